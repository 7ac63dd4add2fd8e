"""POST /webhooks: verify, record once, keep the newest state, acknowledge without calling the POS."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import create_app
from app.models import MemberLink, Shop, WebhookDelivery
from app.shopify.verify import InvalidSignature, ShopifyVerifier

from .helpers import customer, deliver


@pytest.fixture
def app_client(services):
    return create_app(services=services).test_client()


def secret(services) -> str:
    return services.config.shopify_api_secret


def links(services) -> list[MemberLink]:
    with services.db.transaction() as s:
        return s.scalars(select(MemberLink)).all()


def deliveries(services) -> int:
    with services.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(WebhookDelivery))


def test_shopifys_documented_hmac_example_verifies():
    verifier = ShopifyVerifier("key", "hush")
    headers = {"X-Shopify-Hmac-Sha256": "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=",
               "X-Shopify-Shop-Domain": "shop-name.myshopify.com", "X-Shopify-Topic": "customers/update",
               "X-Shopify-Webhook-Id": "w1"}
    verified = verifier.webhook("POST", headers, "https://app/webhooks", b'{"id":1}')
    assert (verified.shop_domain, verified.topic, verified.webhook_id) == ("shop-name.myshopify.com",
                                                                            "customers/update", "w1")
    with pytest.raises(InvalidSignature):
        verifier.webhook("POST", headers, "https://app/webhooks", b'{"id":2}')


def test_a_new_customer_is_queued_in_milliseconds_without_calling_the_pos(services, app_client, smaregi_em):
    resp = deliver(app_client, secret(services), "customers/create", customer())
    assert resp.status_code == 200 and resp.json == {"status": "queued"}
    [link] = links(services)
    assert (link.shopify_customer_id, link.state) == (8840734670934, "pending")
    assert link.desired["email"] == "taro@example.com"
    assert smaregi_em[0].stats["requests"] == 0


@pytest.mark.parametrize("hmac", [False, "", "bm90IHRoZSBobWFj"])
def test_missing_or_wrong_hmac_is_401_and_records_nothing(services, app_client, hmac):
    resp = deliver(app_client, secret(services), "customers/create", customer(), hmac=hmac)
    assert resp.status_code == 401
    assert resp.json["error"]["code"] == "invalid_signature"
    assert deliveries(services) == 0 and links(services) == []


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'{"id": "abc", "updated_at": "2026-11-20T10:00:00+09:00"}',
                                 b'{"id": 5, "updated_at": "yesterday"}'])
def test_malformed_body_with_valid_hmac_is_400_and_records_nothing(services, app_client, raw):
    resp = deliver(app_client, secret(services), "customers/update", None, raw=raw)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_request"
    assert deliveries(services) == 0 and links(services) == []


def test_a_redelivery_is_acknowledged_and_ignored(services, app_client):
    first = deliver(app_client, secret(services), "customers/create", customer(), webhook_id="w-1", event_id="e-1")
    again = deliver(app_client, secret(services), "customers/create", customer(first="次郎"), webhook_id="w-1")
    other_subscription = deliver(app_client, secret(services), "customers/create", customer(first="三郎"),
                                 webhook_id="w-2", event_id="e-1")
    assert [r.status_code for r in (first, again, other_subscription)] == [200, 200, 200]
    assert again.json["status"] == other_subscription.json["status"] == "duplicate"
    [link] = links(services)
    assert link.desired["first_name"] == "太郎"


def test_an_older_update_never_overwrites_a_newer_one(services, app_client):
    deliver(app_client, secret(services), "customers/update", customer(first="新しい", minutes=10))
    late = deliver(app_client, secret(services), "customers/update", customer(first="古い", minutes=5))
    assert late.json["status"] == "stale"
    [link] = links(services)
    assert link.desired["first_name"] == "新しい"
    assert link.shopify_updated_at.isoformat().startswith("2026-11-20T01:10")


def test_an_update_that_changes_nothing_we_sync_queues_nothing(services, app_client):
    deliver(app_client, secret(services), "customers/create", customer())
    with services.db.transaction() as s:
        s.scalar(select(MemberLink)).state = "synced"
    echo = deliver(app_client, secret(services), "customers/update", customer(minutes=1))
    assert echo.json["status"] == "unchanged"
    assert links(services)[0].state == "synced"


def test_unknown_shops_and_topics_are_acknowledged(services, app_client):
    resp = deliver(app_client, secret(services), "customers/create", customer(), shop="brand-new.myshopify.com")
    assert resp.json["status"] == "queued"  # synced through SMAREGI_CONTRACT_ID, no Shopify token needed
    with services.db.transaction() as s:
        assert s.scalar(select(Shop.domain).where(Shop.domain == "brand-new.myshopify.com"))
    other = deliver(app_client, secret(services), "products/update", {"id": 1})
    assert other.status_code == 200 and other.json["status"] == "ignored"


def test_with_sync_switched_off_events_are_kept_as_paused(db_url, smaregi_em, shopify_em, make_services):
    services = make_services(db_url, smaregi_url=smaregi_em[1], SMAREGI_SYNC_ENABLED="false")
    client = create_app(services=services).test_client()
    resp = deliver(client, secret(services), "customers/create", customer())
    assert resp.json["status"] == "paused"
    assert links(services)[0].state == "paused"
