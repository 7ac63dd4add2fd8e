"""One named verification per Shopify surface: webhook, app proxy, App Home, customer account.

Each wraps `shopifyapp` (constant-time HMAC and JWT checks) and adds what it leaves out: missing
webhook HMAC is 401 (not its 400), and an app-proxy query that repeats `shop`, `timestamp`,
`signature` or `logged_in_customer_id` is refused, since a repeated identity is ambiguous.
Nothing from a request is read before its verification passed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from shopify_app import ShopifyApp

from .transport import shop_domain

SINGLE_VALUE_PROXY_PARAMS = ("shop", "timestamp", "signature", "logged_in_customer_id")


class InvalidSignature(Exception):
    """The request is not provably from Shopify. `reason` is a log code, never shown to users."""

    def __init__(self, reason: str, status: int = 401, headers: Mapping[str, str] | None = None,
                 body: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = dict(headers or {})
        self.body = body


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
class VerifiedAppHome:
    shop_domain: str
    user_id: str | None
    id_token: object  # shopify_app.IdTokenDetails, handed to token exchange as is
    headers: dict[str, str]  # CSP frame-ancestors etc. for document responses
    invalid_token_response: object


def _request(method: str, headers: Mapping[str, str], url: str, body: str = "") -> dict:
    return {"method": method, "headers": dict(headers), "url": url, "body": body}


def _customer_id(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    raw = raw.rsplit("/", 1)[-1]  # accepts both "123" and "gid://shopify/Customer/123"
    if not raw.isdigit():
        raise InvalidSignature("malformed_customer_id")
    return int(raw)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class ShopifyVerifier:
    def __init__(self, api_key: str, api_secret: str, old_api_secret: str | None = None):
        self.app = ShopifyApp(client_id=api_key, client_secret=api_secret, old_client_secret=old_api_secret)

    def webhook(self, method: str, headers: Mapping[str, str], url: str, body: bytes) -> VerifiedWebhook:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSignature("body_not_utf8") from None
        result = self.app.verify_webhook_req(_request(method, headers, url, text))
        if not result.ok:
            # Shopify's compliance review expects 401 for a missing HMAC as for a wrong one.
            status = 405 if result.response.status == 405 else 401
            raise InvalidSignature(result.log.code, status=status)
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

    def app_proxy(self, method: str, headers: Mapping[str, str], url: str) -> VerifiedProxy:
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
        for name in SINGLE_VALUE_PROXY_PARAMS:
            if len(query.get(name, ())) > 1:
                raise InvalidSignature(f"repeated_{name}")
        result = self.app.verify_app_proxy_req(_request(method, headers, url))
        if not result.ok or not result.shop:
            raise InvalidSignature(result.log.code if not result.ok else "missing_shop")
        return VerifiedProxy(shop_domain=shop_domain(result.shop),
                             customer_id=_customer_id(result.logged_in_customer_id))

    def customer_account(self, method: str, headers: Mapping[str, str], url: str) -> VerifiedCustomerAccount:
        result = self.app.verify_customer_account_ui_ext_req(_request(method, headers, url))
        if not result.ok or not result.shop:
            raise InvalidSignature(result.log.code if not result.ok else "missing_dest",
                                   status=result.response.status if result.response.status in (204, 401) else 401,
                                   headers=result.response.headers)
        claims = result.id_token.claims if result.id_token else {}
        return VerifiedCustomerAccount(shop_domain=shop_domain(result.shop),
                                       customer_id=_customer_id(claims.get("sub")))

    def app_home(self, method: str, headers: Mapping[str, str], url: str,
                 patch_id_token_path: str) -> VerifiedAppHome:
        """Document loads carry ?id_token=; fetches carry `Authorization: Bearer`. Both verified here."""
        result = self.app.verify_app_home_req(_request(method, headers, url), patch_id_token_path)
        if not result.ok or not result.shop:
            # For a document this is the redirect to the patch-id-token page, for a fetch the 401
            # with X-Shopify-Retry-Invalid-Session-Request that makes App Bridge retry.
            raise InvalidSignature(result.log.code, status=result.response.status,
                                   headers=result.response.headers, body=result.response.body)
        return VerifiedAppHome(shop_domain=shop_domain(result.shop), user_id=result.user_id,
                               id_token=result.id_token, headers=dict(result.response.headers),
                               invalid_token_response=result.invalid_token_response)

    def patch_id_token_page(self, method: str, headers: Mapping[str, str], url: str):
        return self.app.app_home_patch_id_token(_request(method, headers, url))
