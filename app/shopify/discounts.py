"""One-time, customer-scoped discount codes and the customer's `loyalty.coupons` metafield."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .admin import AdminClient, ShopifyRejected, user_errors

log = logging.getLogger(__name__)

COUPONS_NAMESPACE, COUPONS_KEY = "loyalty", "coupons"
CONVERSION_TIMEOUT_S = 4.0  # a shopper is waiting

CREATE = """
mutation PointbridgeCreateCode($input: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $input) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""
FIND = """
query PointbridgeFindCode($code: String!) {
  codeDiscountNodeByCode(code: $code) { id }
}"""
USAGE = """
query PointbridgeCodeUsage($code: String!) {
  codeDiscountNodeByCode(code: $code) { id codeDiscount { ... on DiscountCodeBasic { asyncUsageCount status } } }
}"""
DELETE = """
mutation PointbridgeDeleteCode($id: ID!) {
  discountCodeDelete(id: $id) { deletedCodeDiscountId userErrors { field code message } }
}"""
ACTIVATE = """
mutation PointbridgeActivateCode($id: ID!) {
  discountCodeActivate(id: $id) { codeDiscountNode { id } userErrors { field code message } }
}"""
DEACTIVATE = """
mutation PointbridgeDeactivateCode($id: ID!) {
  discountCodeDeactivate(id: $id) { codeDiscountNode { id } userErrors { field code message } }
}"""
WRITE_COUPONS = """
mutation PointbridgeSetCoupons($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) { metafields { key } userErrors { field code message } }
}"""


def customer_gid(customer_id: int) -> str:
    return f"gid://shopify/Customer/{customer_id}"


@dataclass(frozen=True)
class CodeRequest:
    code: str
    title: str
    customer_id: int
    amount: int  # in the shop's currency
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class CodeUsage:
    discount_id: str
    used: int  # asyncUsageCount
    status: str  # ACTIVE | EXPIRED | SCHEDULED


class Discounts:
    def __init__(self, admin: AdminClient):
        self.admin = admin

    def create(self, shop: str, req: CodeRequest) -> str:
        """Create the code; returns its DiscountCodeNode id. ShopifyRejected if Shopify said no."""
        data = self.admin.graphql(shop, CREATE, {"input": {
            "title": req.title, "code": req.code,
            "startsAt": req.starts_at.isoformat(), "endsAt": req.ends_at.isoformat(),
            "context": {"customers": {"add": [customer_gid(req.customer_id)]}},
            "customerGets": {"value": {"discountAmount": {"amount": str(req.amount), "appliesOnEachItem": False}},
                             "items": {"all": True}},
            "usageLimit": 1, "appliesOncePerCustomer": True,
            "combinesWith": {"orderDiscounts": False, "productDiscounts": True, "shippingDiscounts": True},
        }}, timeout_s=CONVERSION_TIMEOUT_S)
        payload = data.get("discountCodeBasicCreate") or {}
        errors = user_errors(payload)
        if errors or not (payload.get("codeDiscountNode") or {}).get("id"):
            raise ShopifyRejected("discount_rejected", errors)
        return payload["codeDiscountNode"]["id"]

    def find(self, shop: str, code: str) -> str | None:
        """After an ambiguous create: does the code exist?"""
        node = self.admin.graphql(shop, FIND, {"code": code}, timeout_s=CONVERSION_TIMEOUT_S).get("codeDiscountNodeByCode")
        return (node or {}).get("id")

    def usage(self, shop: str, code: str) -> CodeUsage | None:
        """Whether an order has used the code (Shopify counts asynchronously: an order the app has
        seen counts too, in the ledger). None: the code no longer exists."""
        node = self.admin.graphql(shop, USAGE, {"code": code}, timeout_s=CONVERSION_TIMEOUT_S).get("codeDiscountNodeByCode")
        if not node:
            return None
        discount = node.get("codeDiscount") or {}
        return CodeUsage(node["id"], int(discount.get("asyncUsageCount") or 0), str(discount.get("status") or ""))

    def delete(self, shop: str, discount_id: str) -> None:
        payload = self.admin.graphql(shop, DELETE, {"id": discount_id}).get("discountCodeDelete") or {}
        errors = [e for e in user_errors(payload) if e.get("code") != "NOT_FOUND"]  # already gone is fine
        if errors:
            raise ShopifyRejected("delete_rejected", errors)

    def activate(self, shop: str, discount_id: str) -> None:
        payload = self.admin.graphql(shop, ACTIVATE, {"id": discount_id}).get("discountCodeActivate") or {}
        if user_errors(payload):
            raise ShopifyRejected("activate_rejected", user_errors(payload))

    def deactivate(self, shop: str, discount_id: str) -> None:
        payload = self.admin.graphql(shop, DEACTIVATE, {"id": discount_id}).get("discountCodeDeactivate") or {}
        if user_errors(payload):
            raise ShopifyRejected("deactivate_rejected", user_errors(payload))

    def set_coupons(self, shop: str, customer_id: int, coupons: list[dict[str, Any]]) -> None:
        """Write the customer's coupon list whole, in one call. Our ledger is its source of truth,
        so nothing is read first, and whatever else the field held (the `loyalty` namespace is not
        reserved: the merchant or another app may have written anything there) is replaced. Without
        compareDigest the last write wins; the saga makes sure the last one is up to date."""
        metafield = {"ownerId": customer_gid(customer_id), "namespace": COUPONS_NAMESPACE, "key": COUPONS_KEY,
                     "type": "json", "value": json.dumps(coupons, ensure_ascii=False)}
        payload = self.admin.graphql(shop, WRITE_COUPONS, {"metafields": [metafield]}).get("metafieldsSet") or {}
        errors = user_errors(payload)
        if errors:
            raise ShopifyRejected("metafield_rejected", errors)
