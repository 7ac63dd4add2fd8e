"""Shopify customer payload → the Smaregi member fields we own.

Smaregi's limits (reference §3.3) are applied here, before any call, so that one bad field is
dropped or trimmed instead of blocking the whole member.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

NAME_MAX = 85
ADDRESS_MAX = 85
POSTCODE_MAX = 10
EMAIL_MAX = 256
SMAREGI_PHONE = re.compile(r"^[a-zA-Z0-9 -/:-@\[-`{-~]{1,20}$")


def _clean(value: Any) -> str:
    return unicodedata.normalize("NFC", str(value or "")).strip()


EMAIL_KEY_MAX = 254  # RFC 5321's longest address; the directory's column holds 255


def normalize_email(value: Any) -> str | None:
    """The one key e-mails are compared by (member directory, matching, import). NFKC then case
    folding, so an address typed in full-width letters at the register, or in another case,
    matches; no provider-specific dot/plus folding, since two addresses that differ
    there may be two people."""
    email = unicodedata.normalize("NFKC", str(value or "")).strip().casefold()
    return email if "@" in email and len(email) <= EMAIL_KEY_MAX else None


def email_verified(state: dict[str, str]) -> bool:
    """Shopify said the customer's e-mail is verified (`verified_email: true`) in the state we hold."""
    return state.get("verified_email") == "true"


def customer_state(payload: dict[str, Any]) -> dict[str, str]:
    """What we keep of a customers/* payload: the fields that reach Smaregi, and whether the
    e-mail may be used to link a store member."""
    address = payload.get("default_address") or {}
    return {
        "first_name": _clean(payload.get("first_name")),
        "last_name": _clean(payload.get("last_name")),
        "email": _clean(payload.get("email")),
        # Not sent to Smaregi, but part of the state: a later update that verifies the e-mail
        # changes the fingerprint, and so queues the link that waited for it.
        "verified_email": "true" if payload.get("verified_email") is True else "false",
        "phone": _clean(payload.get("phone")),
        "zip": _clean(address.get("zip")),
        "province": _clean(address.get("province")),
        "city": _clean(address.get("city")),
        "address1": _clean(address.get("address1")),
        "address2": _clean(address.get("address2")),
    }


def domestic_phone(raw: str) -> str | None:
    """+81 90-1111-2222 → 090-1111-2222. Anything Smaregi's format rejects is dropped."""
    phone = unicodedata.normalize("NFKC", raw).strip()
    if not phone:
        return None
    compact = re.sub(r"[\s()]", "", phone)
    if compact.startswith("+81"):
        rest = compact[3:].lstrip("-")
        phone = rest if rest.startswith("0") else "0" + rest
    else:
        phone = compact
    return phone if SMAREGI_PHONE.match(phone) else None


def smaregi_fields(state: dict[str, str], placeholder: str) -> dict[str, str]:
    """The member fields we write. Names are required by Smaregi; a blank gets the placeholder."""
    fields = {
        "lastName": (state.get("last_name") or placeholder)[:NAME_MAX],
        "firstName": (state.get("first_name") or placeholder)[:NAME_MAX],
    }
    email = state.get("email", "")
    if email and len(email) <= EMAIL_MAX and "@" in email:
        fields["mailAddress"] = email
    phone = domestic_phone(state.get("phone", ""))
    if phone:
        fields["phoneNumber"] = phone
    postcode = unicodedata.normalize("NFKC", state.get("zip", "")).replace(" ", "")
    if postcode and len(postcode) <= POSTCODE_MAX and postcode.isascii():
        fields["postCode"] = postcode
    address = "".join(part for part in (state.get("province"), state.get("city"), state.get("address1")) if part)
    if state.get("address2"):
        address = f"{address} {state['address2']}" if address else state["address2"]
    if address:
        fields["address"] = address[:ADDRESS_MAX]
    return fields


def fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
