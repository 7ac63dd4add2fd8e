"""Why a customer's sync, a customer import or a point movement stopped, in the merchant's words, by code.

The English text is what is stored (`member_links.last_error`, `customer_imports.reason`,
`point_movements.error`) and what
the CLI and the operator read. The admin recognises the code and its values again from that text
and says it in its own language (admin_text `reason_<code>`); text stored before a code existed
is shown as it is.
"""
from __future__ import annotations

import re
from typing import Any

REASONS = {
    # a member's sync (app/sync/worker.py describe, queue.hold / queue.conflict)
    "rate_limited": "Smaregi asked us to slow down.",
    "directory_not_ready": "Waiting for the first import of store members.",
    "rejected_field": "Smaregi rejected the member data ({field}): {detail}",
    "rejected": "Smaregi rejected the member data: {detail}",
    "forbidden": "Smaregi refused access: the contract's plan may not include members and points (Premium Plus, "
                 "Food Business or Retail Business), or the app lacks the pos.customers scope.",
    "credentials": "Smaregi refused the app's credentials (client id/secret or contract id).",
    "not_found": "Smaregi does not know this contract or member.",
    "no_answer": "Smaregi did not answer in time; we will try again.",
    "smaregi_error": "Smaregi error {status}: {detail}",
    "unexpected": "Unexpected error: {error}",
    "held": "A store member has this e-mail address, but the customer has not verified it in Shopify. "
            "It is linked once verified, or choose the member to link now.",
    "conflict": "{count} store members have this e-mail address; choose which one to link.",
    # a customer import (app/sync/customer_import.py)
    "import_no_contract": "No Smaregi contract is connected to this shop.",
    "import_sync_off": "Sending customers to Smaregi is switched off; switch it on, then import again.",
    "import_no_token": "The shop has no Shopify offline token (open the app in Shopify admin once to install it), "
                       "so its customers cannot be read.",
    "import_export_refused": "Shopify refused the export of customers ({reason}).",
    "import_export_gone": "Shopify no longer knows the export of customers.",
    "import_export_ended": "Shopify's export of customers ended {status} ({error_code}).",
    # a point movement left for the merchant to decide (app/points/movements.py)
    "movement_member_gone": "The member is no longer in Smaregi (withdrawn or deleted at the register).",
    "movement_ambiguous": "Two transactions in Smaregi could be this change.",
    "movement_not_moved": "{points} points not moved after {attempts} attempts ({why}).",
}


def text(code: str, **params: Any) -> str:
    return REASONS[code].format(**params)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # literal, name, literal, name, …
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.*)" for i, p in enumerate(parts)),
                      re.S)


_PATTERNS = [(code, _pattern(template)) for code, template in REASONS.items()]


def recognise(stored: str | None) -> dict[str, Any]:
    """`{"reason_code", "reason_params"}` for a stored reason (the code None for text of no known kind);
    nothing for no reason."""
    if not stored:
        return {}
    for code, pattern in _PATTERNS:
        match = pattern.fullmatch(stored or "")
        if match:
            return {"reason_code": code, "reason_params": match.groupdict()}
    return {"reason_code": None, "reason_params": {}}
