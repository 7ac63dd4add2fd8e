"""One place for each shop concept: which contract a shop uses (its proven one, else
SMAREGI_CONTRACT_ID, else none) is the same answer on every path, privacy included."""
from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from app import create_app
from app.config import load_config
from app.models import BalanceSnapshot, DataRequest, DirectoryMember, MemberLink, SmaregiContract
from app.services import Services
from app.sync import directory
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP, make_env
from .helpers import customer, deliver, proxy_url
from .smaregi_connect_support import admin_token, connect
from .test_conversions import TARO, Given

OTHER = "other-shop.myshopify.com"
THEIRS = "sb_theirs01"


def count(services, model, *where) -> int:
    with services.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_redact_on_the_default_contract_removes_the_directory_email_and_the_rest(services, smaregi_em, shopify_em):
    given = Given(services, smaregi_em[0], shopify_em[0])  # SHOP never connected: SMAREGI_CONTRACT_ID applies
    given.client.get(proxy_url(services.config.shopify_api_secret, "balance", TARO))
    deliver(given.client, services.config.shopify_api_secret, "customers/data_request",
            {"customer": {"id": TARO}, "data_request": {"id": 1}})
    taro = DirectoryMember.smaregi_customer_id == given.taro["customerId"]
    assert count(services, DirectoryMember, taro, DirectoryMember.email_normalized == "taro@example.com") == 1

    resp = deliver(given.client, services.config.shopify_api_secret, "customers/redact",
                   {"shop_domain": SHOP, "customer": {"id": TARO, "email": "taro@example.com"}})

    assert resp.json["status"] == "customer_redacted"
    assert count(services, DirectoryMember, DirectoryMember.email_normalized == "taro@example.com") == 0
    assert count(services, DirectoryMember, taro) == 0
    for model in (MemberLink, BalanceSnapshot, DataRequest):
        assert count(services, model, model.shopify_customer_id == TARO) == 0, model.__name__
    assert count(services, DirectoryMember) == 1  # Alice, another member, is still indexed


def test_a_proven_contract_wins_over_the_default_on_every_path(services, smaregi_em):
    em, _ = smaregi_em
    em.add_member(THEIRS, customerCode=str(TARO), lastName="山田", firstName="太郎", points=777)
    client = create_app(services=services).test_client()
    connect(client, services, em, SHOP, THEIRS)
    directory.import_pages(services.db, services.smaregi.contract(THEIRS))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer(TARO)))
    Worker(services, "w").drain()
    assert em.member_by_code(CONTRACT, str(TARO)) is None  # the default contract was never written to
    balance = client.get(proxy_url(services.config.shopify_api_secret, "balance", TARO))
    assert balance.status_code == 200 and balance.json["points"]["balance"] == 777
    test = client.post("/admin/api/smaregi/test", headers={"Authorization": f"Bearer {admin_token(services, SHOP)}"})
    assert test.json["contract_id"] == THEIRS


@pytest.fixture
def public_app(db_url, smaregi_em, shopify_em):
    """A public app: SMAREGI_CONTRACT_ID unset, so only connected shops have a contract."""
    config = dataclasses.replace(load_config(make_env(db_url, smaregi_url=smaregi_em[1], shopify_url=shopify_em[1])),
                                 smaregi_contract_id=None)
    services = Services.build(config)
    yield services
    services.db.dispose()


def test_without_a_proof_or_a_default_a_shop_has_no_contract_anywhere(public_app, smaregi_em):
    services = public_app
    client = create_app(services=services).test_client()
    auth = {"Authorization": f"Bearer {admin_token(services, SHOP)}"}
    settings = client.get("/admin/api/settings", headers=auth).json
    assert (settings["smaregi_contract_id"], settings["smaregi_contract_source"]) == ("", None)
    assert client.post("/admin/api/smaregi/test", headers=auth).json["checks"][0]["name"] == "contract"
    deliver(client, services.config.shopify_api_secret, "customers/create", customer(TARO))
    with services.db.transaction() as s:
        assert s.scalar(select(MemberLink.state)) == "paused"  # kept, sent nowhere
    assert client.get(proxy_url(services.config.shopify_api_secret, "balance", TARO)).status_code == 503

    connect(client, services, smaregi_em[0], SHOP, CONTRACT)
    settings = client.get("/admin/api/settings", headers=auth).json
    assert (settings["smaregi_contract_id"], settings["smaregi_contract_source"]) == (CONTRACT, "sign_in")


def test_shop_redact_keeps_a_directory_another_shop_still_uses(public_app, smaregi_em):
    services, em = public_app, smaregi_em[0]
    em.add_member(THEIRS, customerCode="S-1", lastName="佐藤", firstName="花子", mailAddress="hanako@example.com")
    client = create_app(services=services).test_client()
    connect(client, services, em, SHOP, THEIRS)
    connect(client, services, em, OTHER, THEIRS)
    directory.import_pages(services.db, services.smaregi.contract(THEIRS))
    secret = services.config.shopify_api_secret

    deliver(client, secret, "shop/redact", {"shop_domain": SHOP}, shop=SHOP)
    assert count(services, DirectoryMember, DirectoryMember.contract_id == THEIRS) == 1  # OTHER still uses it
    deliver(client, secret, "shop/redact", {"shop_domain": OTHER}, shop=OTHER)
    assert count(services, DirectoryMember, DirectoryMember.contract_id == THEIRS) == 0
    assert count(services, SmaregiContract, SmaregiContract.contract_id == THEIRS) == 0
