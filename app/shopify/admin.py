"""The one Shopify Admin GraphQL client. Nothing else builds Admin URLs or sends queries."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from shopify_app import ShopifyApp

from ..timing import waiting_on
from .tokens import ShopTokens
from .transport import admin_http_client

log = logging.getLogger(__name__)

ADMIN_TIMEOUT_S = 5.0


class ShopifyUnavailable(Exception):
    """The call did not succeed and may be retried later (network, 5xx, throttled, timeout)."""

    def __init__(self, reason: str, *, ambiguous: bool = False):
        super().__init__(reason)
        self.reason = reason
        # True when Shopify may have applied a mutation we never heard back about.
        self.ambiguous = ambiguous


class ShopifyRejected(Exception):
    """Shopify answered and refused: GraphQL errors or userErrors. Retrying the same call won't help."""

    def __init__(self, reason: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


class AdminClient:
    def __init__(self, app: ShopifyApp, tokens: ShopTokens, admin_base: str, api_version: str):
        self.app = app
        self.tokens = tokens
        self.admin_base = admin_base
        self.api_version = api_version

    def graphql(self, shop_domain: str, query: str, variables: dict[str, Any] | None = None,
                *, timeout_s: float = ADMIN_TIMEOUT_S) -> dict[str, Any]:
        """Run one query or mutation and return `data`. Raises ShopifyUnavailable / ShopifyRejected."""
        token = self.tokens.access_token(shop_domain)
        started = time.monotonic()
        # One retry at most on 429/5xx: callers hold a shopper's time budget.
        with waiting_on("shopify"):
            result = self.app.admin_graphql_request(
                query, shop=shop_domain.removesuffix(".myshopify.com"), access_token=token.token,
                api_version=self.api_version, variables=variables, max_retries=1,
                http_client=admin_http_client(self.admin_base, timeout_s))
        elapsed_ms = round((time.monotonic() - started) * 1000)
        if result.ok:
            cost = (result.extensions or {}).get("cost", {})
            log.debug("shopify.graphql", extra={"shop": shop_domain, "ms": elapsed_ms,
                                                "cost": cost.get("actualQueryCost")})
            return result.data or {}
        status = result.response.status
        log.warning("shopify.graphql_failed", extra={"shop": shop_domain, "ms": elapsed_ms,
                                                     "code": result.log.code, "status": status})
        if result.log.code == "graphql_errors":
            errors = _errors(result.response.body)
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                raise ShopifyUnavailable("throttled")
            raise ShopifyRejected("graphql_errors", errors)
        if status == 401:
            self.tokens.forget(shop_domain)  # revoked (uninstalled elsewhere): read it again next time
        if status == 0:
            # A timeout or reset after sending: a mutation may or may not have happened.
            raise ShopifyUnavailable("network_error", ambiguous=True)
        if status == 429 or status >= 500:
            raise ShopifyUnavailable(f"http_{status}", ambiguous=status >= 500)
        raise ShopifyRejected(f"http_{status}")


def user_errors(payload: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((payload or {}).get("userErrors") or [])


def _errors(body: str) -> list[dict[str, Any]]:
    try:
        return list(json.loads(body).get("errors") or [])
    except (ValueError, AttributeError):
        return []
