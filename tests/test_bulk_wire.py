"""The bulk wire formats, from recorded interactions (tests/cassettes/README.md): Smaregi's
asynchronous bulk create/update, Shopify's bulk query, its polling and its JSONL file."""
from __future__ import annotations

import json
import time

import pytest

from app import create_app, migrate
from app.dev.signing import app_home_id_token
from app.shopify import bulk

from .conftest import CONTRACT, SHOP
from .vcr_support import RECORDING, cassettes

ID_HOST, API_HOST = "https://id.smaregi.dev", "https://api.smaregi.dev"
FILES = "https://storage.googleapis.com/shopify-bulk"
CALLBACK = "https://pointbridge.example.com/smaregi/bulk-callback/TOKEN"


@pytest.fixture
def smaregi_wire(tmp_path, make_services, request):
    url = f"sqlite:///{tmp_path / 'wire.db'}"
    migrate.upgrade(url)
    if RECORDING:
        em, live = request.getfixturevalue("smaregi_em")
        em.bulk_delay_s = 3600  # the callback is not part of the client's wire format
        services = make_services(url, smaregi_url=live)
        origins = {f"{live}/app/": f"{ID_HOST}/app/", f"{live}/": f"{API_HOST}/"}
    else:
        services, origins = make_services(url, smaregi_url=API_HOST), {}
        services.smaregi.id_base = ID_HOST
    return services.smaregi.contract(CONTRACT), cassettes("smaregi", origins)


def test_bulk_create_and_update_send_strings_and_the_callback_url(smaregi_wire):
    client, cassette = smaregi_wire
    with cassette("bulk_create_and_update") as c:
        created = client.bulk_create_customers(
            [{"customerCode": "8840734670934", "lastName": "山田", "firstName": "太郎", "mailAddress": "taro@example.com"},
             {"customerCode": "8840734670935", "lastName": "-", "firstName": "-"}], CALLBACK)
        updated = client.bulk_update_customers([{"customerId": 12, "lastName": "山本"}], CALLBACK)
    assert created and updated and created != updated  # the request ids
    post, patch = (r for r in c.requests if r.path.endswith("/customers/bulk"))
    assert (post.method, patch.method) == ("POST", "PATCH")
    assert post.uri == f"{API_HOST}/{CONTRACT}/pos/customers/bulk"
    body = json.loads(post.body)
    assert body["callbackUrl"] == CALLBACK and len(body["customers"]) == 2
    assert json.loads(patch.body)["customers"] == [{"customerId": "12", "lastName": "山本"}]  # numbers as strings


def test_more_than_a_hundred_members_are_never_sent_in_one_request(smaregi_wire):
    client, _ = smaregi_wire
    with pytest.raises(ValueError):
        client.bulk_create_customers([{"customerCode": str(i)} for i in range(101)], CALLBACK)


@pytest.fixture
def shopify_wire(tmp_path, make_services, request):
    url = f"sqlite:///{tmp_path / 'wire.db'}"
    migrate.upgrade(url)
    if RECORDING:
        em, live = request.getfixturevalue("shopify_em")
        em.add_customer(SHOP, 8840734670934, email="taro@example.com", verifiedEmail=True, firstName="太郎",
                        lastName="山田", phone="+819011112222", updatedAt="2026-11-20T01:00:00Z",
                        defaultAddress={"zip": "150-0001", "province": "東京都", "city": "渋谷区",
                                        "address1": "神宮前1-2-3", "address2": None})
        em.add_customer(SHOP, 8840734670935, email=None, verifiedEmail=False, firstName=None, lastName="Smith",
                        phone=None, updatedAt="2026-11-21T01:00:00Z", defaultAddress=None)
        services = make_services(url, shopify_url=live)
        origins = {f"{live}/{SHOP}/": f"https://{SHOP}/", f"{live}/_bulk/": f"{FILES}/"}
    else:
        services = make_services(url)
        services.shop_tokens.admin_base = services.admin.admin_base = "https://{shop}"
        origins = {}
    services.shop_tokens.after_install = None  # the shop profile read has its own cassette (test_shop_profile.py)
    return services, cassettes("shopify", origins)


def test_customer_export_runs_a_bulk_query_polls_it_and_streams_the_file(shopify_wire):
    services, cassette = shopify_wire
    with cassette("bulk_customer_export") as c:
        token = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP)
        assert create_app(services=services).test_client().get(
            f"/?shop={SHOP}&host=x&id_token={token}").status_code == 200
        operation_id = bulk.start_customer_export(services.admin, SHOP)
        if RECORDING:
            time.sleep(0.5)  # the emulator "runs" the query
        op = bulk.operation(services.admin, SHOP, operation_id)
        customers = [bulk.webhook_shape(node) for node in bulk.stream_customers(op.url)]
    assert op.status == "COMPLETED" and op.object_count == 2 and (RECORDING or op.url.startswith(FILES))
    run = json.loads(c.requests[1].body)
    assert "bulkOperationRunQuery(query: $query)" in run["query"]
    assert "verifiedEmail" in run["variables"]["query"] and "defaultAddress" in run["variables"]["query"]
    assert customers[0] == {"id": 8840734670934, "email": "taro@example.com", "verified_email": True,
                            "first_name": "太郎", "last_name": "山田", "phone": "+819011112222",
                            "updated_at": "2026-11-20T01:00:00Z",
                            "default_address": {"zip": "150-0001", "province": "東京都", "city": "渋谷区",
                                                "address1": "神宮前1-2-3", "address2": None}}
    assert customers[1]["verified_email"] is False and customers[1]["default_address"]["zip"] is None
