"""One named verification per Shopify credential, each accepting only its own kind.

Each wraps `shopifyapp` (constant-time HMAC and JWT signature checks) and adds what it leaves out:

- a missing, non-ASCII or malformed webhook HMAC or proxy signature is a 401 like a wrong one
  (`shopifyapp` says 400 for a missing HMAC and raises on non-ASCII);
- an app-proxy query that could be re-read as someone else's is refused (see `_refuse_ambiguous`);
- session tokens are told apart by their claims, since App Home and the customer-account extension
  sign with the same secret and the same `aud`: an App Home token has `iss` = `https://<shop>/admin`
  and `dest` = `https://<shop>` naming one shop, and a `sub`; a customer-account token has no `iss`,
  and its `sub`, when present, is exactly `gid://shopify/Customer/<digits>`.

Nothing from a request is read before its verification passed.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from shopify_app import ShopifyApp

from ..errors import AppError
from .transport import shop_domain

SHOP_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
CUSTOMER_GID = re.compile(r"gid://shopify/Customer/([0-9]+)")
DIGITS = re.compile(r"[0-9]+")
PROXY_SIGNATURE = re.compile(r"[0-9a-f]{64}")  # hex HMAC-SHA256, as Shopify writes it
WEBHOOK_HMAC_HEADERS = ("x-shopify-hmac-sha256", "shopify-hmac-sha256")
SINGLE_VALUE_PROXY_PARAMS = ("shop", "timestamp", "signature", "logged_in_customer_id")
IDENTITY_PROXY_PARAMS = ("shop", "timestamp", "logged_in_customer_id")


class InvalidSignature(AppError):
    """The request is not provably from Shopify, or not with this surface's credential.
    `reason` is a log code, never shown to users."""

    code, status = "invalid_signature", 401
    message = "The request could not be verified."

    def __init__(self, reason: str, *, message: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message, headers=headers)
        self.reason = reason


class UnreadableBody(AppError):
    code, status = "invalid_request", 400
    message = "The body is not readable JSON."


class InvalidSession(InvalidSignature):
    """The admin API's session token is missing, stale or not an App Home token."""

    code = "invalid_session"
    message = "Session expired."


class ReloadWithNewToken(Exception):
    """An App Home load whose id token is missing or stale: App Bridge's own answer (a redirect to
    the patch-id-token page, or 401 + X-Shopify-Retry-Invalid-Session-Request for a fetch) gets
    it a fresh one. Not an error shown to anyone."""

    def __init__(self, reason: str, response):
        super().__init__(reason)
        self.reason = reason
        self.response = response  # shopifyapp Res: status, headers, body


@dataclass(frozen=True)
class VerifiedWebhook:
    shop_domain: str
    topic: str
    webhook_id: str
    event_id: str | None
    triggered_at: datetime | None
    api_version: str | None
    body: bytes


@dataclass(frozen=True)
class VerifiedProxy:
    shop_domain: str
    customer_id: int | None  # None: nobody is logged in


@dataclass(frozen=True)
class VerifiedCustomerAccount:
    shop_domain: str
    customer_id: int | None  # from `sub`; None when the token carries no customer


@dataclass(frozen=True)
class VerifiedAdminSession:
    shop_domain: str
    user_id: str


@dataclass(frozen=True)
class VerifiedAppHome:
    shop_domain: str
    user_id: str
    id_token: object  # shopify_app.IdTokenDetails, handed to token exchange as is
    headers: dict[str, str]  # CSP frame-ancestors etc. for document responses
    invalid_token_response: object


def _request(method: str, headers: Mapping[str, str], url: str, body: str = "") -> dict:
    return {"method": method, "headers": dict(headers), "url": url, "body": body}


def _header(headers: Mapping[str, str], names: tuple[str, ...]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return next((lowered[n] for n in names if n in lowered), "")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _refuse_ambiguous(pairs: list[tuple[str, str]]) -> None:
    """Shopify signs `key=value` pairs sorted and joined with no separator, and the storefront
    chooses every parameter but Shopify's own, so one signed text can be split into pairs in more
    than one way. A re-split can only move an identity if its text (`logged_in_customer_id=`,
    `shop=`, `timestamp=`) also appears in the signed text somewhere other than at its own pair;
    then the `=` Shopify wrote after the identity would separate some other name instead. So the
    identity texts must appear exactly where their pairs start, no decoded name or value may hold
    `=`, and no identity may repeat. With digits-only customer ids and timestamps and a
    myshopify.com shop, the signed text then has one reading: the one Shopify signed."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        if "=" in name or "=" in value:
            raise InvalidSignature("equals_sign_in_parameter")
        grouped.setdefault(name, []).append(value)
    for name in SINGLE_VALUE_PROXY_PARAMS:
        if len(grouped.get(name, ())) > 1:
            raise InvalidSignature(f"repeated_{name}")
    grouped.pop("signature", None)
    text, starts = "", {}
    for name, values in sorted(grouped.items()):  # the signed text, as Shopify builds it
        starts[name] = len(text)
        text += f"{name}={','.join(values)}"
    for identity in IDENTITY_PROXY_PARAMS:
        needle = f"{identity}="
        at = text.find(needle)
        while at != -1:
            if at != starts.get(identity):
                raise InvalidSignature(f"{identity}_readable_twice")
            at = text.find(needle, at + 1)


def _expiring(claims: Mapping, required: tuple[str, ...]) -> None:
    """PyJWT checked `exp`/`nbf`/`iat` (10 s leeway) where present; Shopify's tokens always carry
    these, so a token without them is not Shopify's."""
    if any(not isinstance(claims.get(name), int | float) for name in required):
        raise InvalidSignature("missing_time_claims")


def _app_home_shop(claims: Mapping) -> str:
    dest, iss = claims.get("dest"), claims.get("iss")
    if not isinstance(dest, str) or not isinstance(iss, str):
        raise InvalidSignature("not_an_app_home_token")
    host = dest.removeprefix("https://")
    if dest != f"https://{host}" or not SHOP_DOMAIN.fullmatch(host) or iss != f"{dest}/admin":
        raise InvalidSignature("iss_and_dest_disagree")
    _expiring(claims, ("exp", "nbf"))
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidSignature("missing_sub")
    return host


class ShopifyVerifier:
    def __init__(self, api_key: str, api_secret: str, old_api_secret: str | None = None):
        self.app = ShopifyApp(client_id=api_key, client_secret=api_secret, old_client_secret=old_api_secret)
        self.secrets = tuple(secret for secret in (api_secret, old_api_secret) if secret)

    def webhook(self, method: str, headers: Mapping[str, str], url: str, body: bytes) -> VerifiedWebhook:
        received = _header(headers, WEBHOOK_HMAC_HEADERS)
        if not received:  # Shopify's compliance review expects 401 here, as for a wrong HMAC
            raise InvalidSignature("missing_hmac")
        if not received.isascii():  # compare_digest raises on non-ASCII text
            raise InvalidSignature("malformed_hmac")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSignature("body_not_utf8") from None
        try:
            result = self.app.verify_webhook_req(_request(method, headers, url, text))
        except RecursionError:
            raise self._unparseable(body, received) from None
        if not result.ok:
            raise InvalidSignature(result.log.code)
        h = {k.lower(): v for k, v in headers.items()}
        webhook_id = h.get("x-shopify-webhook-id") or h.get("shopify-webhook-id") or ""
        return VerifiedWebhook(
            shop_domain=shop_domain(result.shop) if result.shop else "",
            topic=(h.get("x-shopify-topic") or h.get("shopify-topic") or "").strip().lower(),
            webhook_id=webhook_id.strip(),
            event_id=(h.get("x-shopify-event-id") or h.get("shopify-event-id") or "").strip() or None,
            triggered_at=_parse_time(h.get("x-shopify-triggered-at") or h.get("shopify-triggered-at")),
            api_version=h.get("x-shopify-api-version") or h.get("shopify-api-version"),
            body=body,
        )

    def _unparseable(self, body: bytes, received: str) -> AppError:
        """shopifyapp parses the body (to redact its log) before it checks the HMAC, and JSON nested
        this deep cannot be parsed. Its check, made here, keeps a forged body a 401; a signed one is
        a malformed body, 400, as the contract says."""
        for secret in self.secrets:
            expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
            if hmac.compare_digest(expected, received):
                return UnreadableBody()
        return InvalidSignature("invalid_hmac")

    def app_proxy(self, method: str, headers: Mapping[str, str], url: str) -> VerifiedProxy:
        pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
        _refuse_ambiguous(pairs)
        query = dict(pairs)
        if not PROXY_SIGNATURE.fullmatch(query.get("signature", "")):
            raise InvalidSignature("malformed_signature")
        result = self.app.verify_app_proxy_req(_request(method, headers, url))
        if not result.ok:
            raise InvalidSignature(result.log.code)
        shop, customer = query.get("shop", ""), query.get("logged_in_customer_id", "")
        if not SHOP_DOMAIN.fullmatch(shop):
            raise InvalidSignature("malformed_shop")
        if (customer and not DIGITS.fullmatch(customer)) or not DIGITS.fullmatch(query.get("timestamp", "")):
            raise InvalidSignature("malformed_customer_id_or_timestamp")
        return VerifiedProxy(shop_domain=shop, customer_id=int(customer) if customer else None)

    def customer_account(self, method: str, headers: Mapping[str, str], url: str) -> VerifiedCustomerAccount:
        result = self.app.verify_customer_account_ui_ext_req(_request(method, headers, url))
        if not result.ok or result.id_token is None:
            raise InvalidSignature(result.log.code if not result.ok else "no_token")
        claims = result.id_token.claims
        if "iss" in claims:  # App Home tokens carry `iss`; extension tokens never do
            raise InvalidSignature("not_a_customer_account_token")
        _expiring(claims, ("exp",))
        dest = claims.get("dest")
        shop = dest.removeprefix("https://") if isinstance(dest, str) else ""
        if not SHOP_DOMAIN.fullmatch(shop):
            raise InvalidSignature("malformed_dest")
        if "sub" not in claims:
            return VerifiedCustomerAccount(shop_domain=shop, customer_id=None)
        sub = claims["sub"]
        match = CUSTOMER_GID.fullmatch(sub) if isinstance(sub, str) else None
        if match is None:  # a StaffMember gid or an App Home user id is not a customer
            raise InvalidSignature("sub_is_not_a_customer")
        return VerifiedCustomerAccount(shop_domain=shop, customer_id=int(match.group(1)))

    def admin_session(self, method: str, headers: Mapping[str, str], url: str) -> VerifiedAdminSession:
        """A fetch from App Home: `Authorization: Bearer <App Home session token>` and nothing else."""
        if not _header(headers, ("authorization",)):  # a document URL's ?id_token= is not enough here
            raise InvalidSession("missing_bearer", message="Bearer token required.")
        # The patch-id-token path only matters for document loads, never for a Bearer fetch.
        result = self.app.verify_app_home_req(_request(method, headers, url), "/")
        if not result.ok:
            # Signature, expiry or aud: 401 + X-Shopify-Retry-Invalid-Session-Request, so App
            # Bridge fetches a fresh token and retries.
            raise InvalidSession(result.log.code, headers=result.response.headers)
        try:
            shop = _app_home_shop(result.id_token.claims)
        except InvalidSignature as exc:  # validly signed but not an App Home token: no retry
            raise InvalidSession(exc.reason) from None
        return VerifiedAdminSession(shop_domain=shop, user_id=result.id_token.claims["sub"])

    def app_home(self, method: str, headers: Mapping[str, str], url: str,
                 patch_id_token_path: str) -> VerifiedAppHome:
        """A document load, `?shop&host&id_token` (or a fetch with the token as Bearer). The token
        must be App Home's and name the request's `shop`; only then may it be exchanged."""
        result = self.app.verify_app_home_req(_request(method, headers, url), patch_id_token_path)
        if not result.ok:
            raise ReloadWithNewToken(result.log.code, result.response)
        shop = _app_home_shop(result.id_token.claims)
        requested = [v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k == "shop"]
        if requested != [shop]:
            raise InvalidSignature("dest_is_not_the_requested_shop")
        return VerifiedAppHome(shop_domain=shop, user_id=result.id_token.claims["sub"],
                               id_token=result.id_token, headers=dict(result.response.headers),
                               invalid_token_response=result.invalid_token_response)

    def patch_id_token_page(self, method: str, headers: Mapping[str, str], url: str):
        return self.app.app_home_patch_id_token(_request(method, headers, url))
