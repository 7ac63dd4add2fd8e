"""Shopify bulk operations: export every customer as a JSONL file and read it line by line.

Shopify runs one bulk query per shop and app at a time; the result is a JSONL file (one object a
line) behind a signed URL that is valid for a week. The file can be large, so it is streamed and
never held whole in memory.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from .admin import AdminClient, ShopifyRejected, user_errors

CUSTOMERS_QUERY = """
{
  customers {
    edges {
      node {
        id email verifiedEmail firstName lastName phone updatedAt
        defaultAddress { zip province city address1 address2 }
      }
    }
  }
}
"""

RUN = """mutation runCustomerExport($query: String!) {
  bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message } }
}"""

FIELDS = "id status errorCode objectCount url partialDataUrl"
NODE = f"query bulkOperation($id: ID!) {{ node(id: $id) {{ ... on BulkOperation {{ {FIELDS} }} }} }}"
CURRENT = f"{{ currentBulkOperation(type: QUERY) {{ {FIELDS} }} }}"

FINISHED = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}
DOWNLOAD_TIMEOUT_S = (5.0, 60.0)
_IN_PROGRESS = re.compile(r"already in progress", re.I)


@dataclass(frozen=True)
class BulkOperation:
    id: str
    status: str  # CREATED | RUNNING | COMPLETED | FAILED | CANCELING | CANCELED | EXPIRED
    error_code: str | None
    object_count: int
    url: str | None  # None when COMPLETED with no objects

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _operation(node: dict[str, Any] | None) -> BulkOperation | None:
    if not node or not node.get("id"):
        return None
    return BulkOperation(str(node["id"]), str(node.get("status") or ""), node.get("errorCode"),
                         int(node.get("objectCount") or 0), node.get("url"))


def start_customer_export(admin: AdminClient, shop: str) -> str:
    """Start the bulk query; returns the operation id. If one of ours is already running (a crash
    after starting it), that one is adopted."""
    payload = admin.graphql(shop, RUN, {"query": CUSTOMERS_QUERY})["bulkOperationRunQuery"]
    errors = user_errors(payload)
    if errors and any(_IN_PROGRESS.search(str(e.get("message"))) for e in errors):
        current = _operation(admin.graphql(shop, CURRENT).get("currentBulkOperation"))
        if current is not None:
            return current.id
    if errors or not (payload.get("bulkOperation") or {}).get("id"):
        raise ShopifyRejected("bulk_query_refused", errors)
    return str(payload["bulkOperation"]["id"])


def operation(admin: AdminClient, shop: str, operation_id: str) -> BulkOperation | None:
    return _operation(admin.graphql(shop, NODE, {"id": operation_id}).get("node"))


def stream_customers(url: str, skip: int = 0) -> Iterator[dict[str, Any]]:
    """The file's customers in order, after the first `skip` lines (a resumed read)."""
    with requests.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT_S) as resp:
        resp.raise_for_status()
        for number, raw in enumerate(resp.iter_lines()):
            if number < skip or not raw.strip():
                continue
            yield json.loads(raw)


def webhook_shape(node: dict[str, Any]) -> dict[str, Any]:
    """A bulk customer line in the shape of a customers/* webhook payload, so the sync's one
    mapping (app/sync/mapping.py) reads both."""
    address = node.get("defaultAddress") or {}
    return {"id": int(str(node["id"]).rsplit("/", 1)[-1]), "email": node.get("email"),
            "verified_email": bool(node.get("verifiedEmail")), "first_name": node.get("firstName"),
            "last_name": node.get("lastName"), "phone": node.get("phone"), "updated_at": node.get("updatedAt"),
            "default_address": {k: address.get(k) for k in ("zip", "province", "city", "address1", "address2")}}
