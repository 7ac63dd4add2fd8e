"""Customers' names for the admin, read from Shopify when a page shows them — never copied into our
database (Shopify is where the merchant keeps and redacts them)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .admin import AdminClient, ShopifyRejected, ShopifyUnavailable

log = logging.getLogger(__name__)

NAMES_QUERY = """query CustomerNames($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Customer { id legacyResourceId displayName } }
}"""
MAX_IDS = 250  # Shopify's limit for `nodes(ids:)`


@dataclass(frozen=True)
class CustomerName:
    customer_id: int
    name: str
    admin_url: str


def admin_url(shop_domain: str, customer_id: int) -> str:
    """The customer's page in Shopify admin (opened in the top window, outside the app's iframe)."""
    return f"https://admin.shopify.com/store/{shop_domain.removesuffix('.myshopify.com')}/customers/{customer_id}"


def customer_names(admin: AdminClient, shop_domain: str, customer_ids: list[int]) -> list[CustomerName]:
    """Names of the customers Shopify still has; an empty list when Shopify cannot answer now (the
    admin then shows ids, which is what it had before)."""
    ids = sorted(set(customer_ids))[:MAX_IDS]
    if not ids:
        return []
    try:
        data = admin.graphql(shop_domain, NAMES_QUERY, {"ids": [f"gid://shopify/Customer/{i}" for i in ids]},
                             timeout_s=3)
    except (ShopifyUnavailable, ShopifyRejected) as exc:
        log.warning("admin.customer_names_unavailable", extra={"shop": shop_domain, "reason": str(exc)})
        return []
    out = []
    for node in data.get("nodes") or []:
        if node and node.get("legacyResourceId") and node.get("displayName"):
            cid = int(node["legacyResourceId"])
            out.append(CustomerName(cid, node["displayName"], admin_url(shop_domain, cid)))
    return out
