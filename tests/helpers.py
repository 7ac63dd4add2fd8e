"""Building Shopify deliveries and payloads the way Shopify sends them."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

from app.dev.signing import webhook_hmac

from .conftest import SHOP

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=9)))


def customer(customer_id: int = 8840734670934, *, first: str = "太郎", last: str = "山田",
             email: str | None = "taro@example.com", phone: str | None = "+81 90-1111-2222",
             minutes: int = 0, address: dict | None = None) -> dict:
    updated = (T0 + timedelta(minutes=minutes)).isoformat()
    return {"id": customer_id, "email": email, "first_name": first, "last_name": last, "phone": phone,
            "created_at": T0.isoformat(), "updated_at": updated, "state": "enabled", "verified_email": True,
            "currency": "JPY", "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
            "default_address": address if address is not None else {
                "zip": "150-0001", "province": "東京都", "city": "渋谷区", "address1": "神宮前1-2-3",
                "address2": "101号室", "phone": None}}


def deliver(client, secret: str, topic: str, payload, *, webhook_id: str | None = None,
            event_id: str | None = None, shop: str = SHOP, hmac: str | None = None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop,
               "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
               "X-Shopify-Event-Id": event_id or str(uuid.uuid4()), "X-Shopify-API-Version": "2026-10",
               "X-Shopify-Triggered-At": "2026-11-20T01:00:00Z", "Content-Type": "application/json"}
    if hmac is not False:
        headers["X-Shopify-Hmac-Sha256"] = hmac if hmac is not None else webhook_hmac(body, secret)
    return client.post("/webhooks", data=body, headers=headers)


def proxy_url(secret: str, path: str, customer_id, *, shop: str = SHOP, extra: dict | None = None,
              timestamp: int | None = None) -> str:
    from app.dev.signing import proxy_params, proxy_query

    params = {**proxy_params(shop, customer_id, timestamp=timestamp), **(extra or {})}
    return f"/proxy/{path}?{proxy_query(params, secret)}"


def early_in_a_second() -> None:
    """What follows (well under half a second) then ends before its clock second does: late in one,
    a shopper's rate-limit slot counts in two seconds, one statement more (app/smaregi/ratelimit.py)."""
    into = time.time() % 1
    if into > 0.5:
        time.sleep(1 - into)
