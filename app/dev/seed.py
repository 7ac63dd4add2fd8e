"""Demo data a newcomer sees on first run: members with points, ranks, expiry and some history."""
from __future__ import annotations

from datetime import datetime, timedelta

from .shopify_emulator import ShopifyEmulator
from .smaregi_emulator import JST, SmaregiEmulator

DEV_SHOP = "pointbridge-dev.myshopify.com"

# (shopify id or None for a store-only member, member code, last, first, e-mail, points, rank)
MEMBERS = [
    (8840734670934, "8840734670934", "山田", "太郎", "taro@example.com", 1250, "gold"),
    (None, "S-000101", "佐藤", "花子", "hanako@example.com", 320, "silver"),
    (8840734670935, "8840734670935", "Smith", "Alice", "alice@example.com", 80, None),
    (None, "S-000102", "鈴木", "一郎", "ichiro@example.com", 5400, "platinum"),
]
# Shopify customers: the first and third are members already; Hanako has registered online with
# the e-mail of her store membership (the sync links her instead of creating a duplicate).
CUSTOMERS = [
    (8840734670934, "太郎", "山田", "taro@example.com"),
    (8840734670936, "花子", "佐藤", "hanako@example.com"),
    (8840734670935, "Alice", "Smith", "alice@example.com"),
]


EXISTING_CUSTOMERS = 40


def customer_payloads() -> list[dict]:
    """customers/create bodies for the seeded Shopify customers, as Shopify would send them."""
    return [{"id": cid, "first_name": first, "last_name": last, "email": mail, "phone": None,
             "created_at": "2026-11-01T10:00:00+09:00", "updated_at": "2026-11-01T10:00:00+09:00",
             "default_address": None, "admin_graphql_api_id": f"gid://shopify/Customer/{cid}"}
            for cid, first, last, mail in CUSTOMERS]


def order_payloads() -> list[tuple[str, dict]]:
    """(topic, body) for Taro's online orders, so a newcomer sees the history move: one paid
    (¥12,800 → 128 points), then partly refunded (¥8,000 left → 48 taken back), and one paid then
    cancelled (its 35 points granted, then taken back)."""
    def order(order_id: int, minutes: int, subtotal: str, financial: str, cancelled: bool = False) -> dict:
        moment = f"2026-11-20T10:{minutes:02d}:00+09:00"
        return {"id": order_id, "name": f"#{order_id - 5_000_000_000}", "updated_at": moment,
                "financial_status": financial, "fulfillment_status": None,
                "cancelled_at": moment if cancelled else None, "current_subtotal_price": subtotal,
                "current_subtotal_price_set": {"shop_money": {"amount": subtotal, "currency_code": "JPY"}},
                "customer": {"id": CUSTOMERS[0][0]}, "discount_codes": [],
                "line_items": [{"id": 1, "gift_card": False, "price": subtotal, "quantity": 1}]}
    return [("orders/paid", order(5_000_001_001, 0, "12800", "paid")),
            ("orders/paid", order(5_000_001_002, 10, "3500", "paid")),
            ("orders/updated", order(5_000_001_001, 5, "8000", "partially_refunded")),
            ("orders/cancelled", order(5_000_001_002, 15, "0", "refunded", cancelled=True))]


def seed(smaregi: SmaregiEmulator, shopify: ShopifyEmulator, contract_id: str, shop: str = DEV_SHOP) -> None:
    today = datetime.now(JST)
    for _shopify_id, code, last, first, mail, points, rank in MEMBERS:
        member = smaregi.add_member(contract_id, customerCode=code, lastName=last, firstName=first,
                                    mailAddress=mail, rank=rank, points=0,
                                    expires_on=(today + timedelta(days=120)).date().isoformat())
        # Two register sales within the last month for the history list, then the seeded balance.
        for days_ago, amount in ((20, 5400), (6, 12800)):
            smaregi.add_sale(contract_id, member["customerId"], earned=amount // 100, total=amount,
                             when=today - timedelta(days=days_ago))
        smaregi.contracts[contract_id].points[member["customerId"]]["point"] = points
    for customer_id, first, last, mail in CUSTOMERS:
        shopify.add_customer(shop, customer_id, firstName=first, lastName=last,
                             defaultEmailAddress={"emailAddress": mail}, email=mail, verifiedEmail=True,
                             updatedAt="2026-11-01T01:00:00Z")
    # Customers from before the app was installed: no webhook ever came for them; the import does.
    for n in range(EXISTING_CUSTOMERS):
        shopify.add_customer(shop, 8840734680000 + n, firstName=f"顧客{n + 1}", lastName="既存",
                             email=f"existing{n + 1}@example.com", verifiedEmail=True, updatedAt="2026-10-01T01:00:00Z")
