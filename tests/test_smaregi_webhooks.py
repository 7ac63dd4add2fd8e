"""POST /smaregi/webhooks: what the register changes reaches the directory, the links and the
shopper in seconds; a forged, duplicate or malformed delivery changes nothing."""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from sqlalchemy import func, select

from app import create_app
from app.dev.signing import app_home_id_token, customer_account_token, proxy_params, proxy_query, webhook_hmac
from app.models import BalanceSnapshot, DirectoryMember, MemberLink, SmaregiEvent
from app.sync import directory
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP, serving
from .helpers import customer, proxy_url

TARO = 8840734670934
SECRET = "whsec-test-0123456789abcdef"


@pytest.fixture
def services(db_url, smaregi_em, shopify_em, make_services):
    return make_services(db_url, smaregi_url=smaregi_em[1], shopify_url=shopify_em[1],
                         SMAREGI_WEBHOOK_SECRET=SECRET)


@pytest.fixture
def client(services):
    return create_app(services=services).test_client()


@pytest.fixture
def taro(services, smaregi_em):
    """Taro: a synced member, rank gold, 1,250 points."""
    em, _ = smaregi_em
    member = em.add_member(CONTRACT, customerCode=str(TARO), lastName="山田", firstName="太郎",
                           mailAddress="taro@example.com", rank="gold", points=1250)
    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer(TARO)))
    Worker(services, "w").drain()
    return member


def send(client, body, *, secret: str | None = SECRET, event_id: str | None = None, headers: dict | None = None,
         raw: bytes | None = None, environ: dict | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    h = {"Content-Type": "application/json", "Smaregi-Event-Id": event_id or str(uuid.uuid4())}
    if isinstance(body, dict):
        h.update({"Smaregi-Event": str(body.get("event")), "Smaregi-Contract-Id": str(body.get("contractId"))})
    if secret is not None:
        h["X-Pointbridge-Secret"] = secret
    h.update(headers or {})
    return client.post("/smaregi/webhooks", data=data, headers=h, environ_overrides=environ or {})


def edited(*ids, contract=CONTRACT, action="edited"):
    return {"contractId": contract, "event": "pos:customers", "action": action, "customerIds": [str(i) for i in ids]}


def events(services) -> int:
    with services.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(SmaregiEvent))


def balance(client, services, customer_id=TARO):
    return client.get(proxy_url(services.config.shopify_api_secret, "balance", customer_id))


def link(services, customer_id=TARO) -> MemberLink:
    with services.db.transaction() as s:
        return s.scalar(select(MemberLink).where(MemberLink.shopify_customer_id == customer_id))


# -- the credential ---------------------------------------------------------------------------------------
def test_unset_secret_means_the_endpoint_does_not_exist(db_url, smaregi_em, shopify_em, make_services):
    plain = make_services(db_url, smaregi_url=smaregi_em[1], shopify_url=shopify_em[1])
    resp = send(create_app(services=plain).test_client(), edited(1))
    assert resp.status_code == 404
    assert events(plain) == 0


def test_only_the_shared_secret_opens_it_and_a_refusal_changes_nothing(services, client, taro):
    config = services.config
    body = edited(taro["customerId"])
    raw = json.dumps(body).encode()
    shopify_hmac = {"X-Shopify-Hmac-Sha256": webhook_hmac(raw, config.shopify_api_secret),
                    "X-Shopify-Topic": "customers/update", "X-Shopify-Shop-Domain": SHOP}
    app_home = {"Authorization": "Bearer " + app_home_id_token(config.shopify_api_key, config.shopify_api_secret, SHOP)}
    account = {"Authorization": "Bearer " + customer_account_token(config.shopify_api_key, config.shopify_api_secret,
                                                                   SHOP, TARO)}
    refused = [
        send(client, body, secret=None),                                   # no credential
        send(client, body, secret=SECRET[:-1]),                            # forged: one character short
        send(client, body, secret=SECRET + "x"),
        send(client, body, secret=SECRET.upper()),
        send(client, body, secret=""),
        send(client, body, secret=None, headers=shopify_hmac),             # Shopify's webhook HMAC
        send(client, body, secret=None, headers=app_home),                 # an App Home session token
        send(client, body, secret=None, headers=account),                  # a customer-account token
        send(client, body, secret=config.shopify_api_secret),              # another credential's secret
        send(client, body, secret=None, environ={"HTTP_X_POINTBRIDGE_SECRET": "sécret-ü"}),  # non-ASCII
    ]
    signed = proxy_query(proxy_params(SHOP, TARO), config.shopify_api_secret)  # an App Proxy signature
    refused.append(client.post(f"/smaregi/webhooks?{signed}", data=raw, headers={"Content-Type": "application/json",
                                                                               "Smaregi-Event-Id": "e"}))
    assert [r.status_code for r in refused] == [401] * len(refused)
    assert all(r.json["error"]["code"] == "invalid_signature" for r in refused)
    assert events(services) == 0


# -- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, headers", [
    (b"not json", {}),
    (b"[1, 2]", {}),
    (json.dumps({"event": "pos:customers", "action": "edited", "customerIds": ["1"]}).encode(), {}),
    (json.dumps(edited("1") | {"customerIds": "1"}).encode(), {}),
    (json.dumps(edited("1") | {"customerIds": ["1; DROP"]}).encode(), {}),
    (json.dumps(edited("1") | {"customerIds": [True]}).encode(), {}),
    (json.dumps({"contractId": CONTRACT, "event": "pos:transactions", "action": "created"}).encode(), {}),
    (json.dumps(edited("1")).encode(), {"Smaregi-Contract-Id": "sb_other"}),
    (json.dumps(edited("1")).encode(), {"Smaregi-Event-Id": ""}),
])
def test_a_malformed_delivery_is_400_and_stores_nothing(services, client, body, headers):
    resp = send(client, None, raw=body, headers=headers)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_request"
    assert events(services) == 0


def test_numbers_as_strings_or_integers_are_both_ids(services, client):
    assert send(client, edited(1) | {"customerIds": [12, "13"]}).json == {"status": "queued"}
    with services.db.transaction() as s:
        assert s.scalar(select(SmaregiEvent.ids)) == ["12", "13"]


def test_a_contract_none_of_our_shops_uses_is_answered_and_not_stored(services, client):
    resp = send(client, edited(1, contract="sb_stranger"))
    assert resp.status_code == 200 and resp.json == {"status": "unknown_contract"}
    assert events(services) == 0


def test_other_smaregi_events_are_acknowledged_and_ignored(services, client):
    resp = send(client, {"contractId": CONTRACT, "event": "pos:stores", "action": "edited", "storeIds": ["1"]})
    assert resp.json == {"status": "ignored"} and events(services) == 0


def test_a_duplicate_event_changes_nothing(services, client, taro, smaregi_em):
    em, _ = smaregi_em
    event_id = str(uuid.uuid4())
    assert send(client, edited(taro["customerId"]), event_id=event_id).json == {"status": "queued"}
    assert send(client, edited(taro["customerId"]), event_id=event_id).json == {"status": "duplicate"}
    assert events(services) == 1
    before = em.stats["requests"]
    Worker(services, "w").drain()
    Worker(services, "w").drain()
    assert em.stats["requests"] - before == 1  # the member was read once


def test_the_answer_comes_before_any_call_to_smaregi(services, client, taro, smaregi_em):
    em, _ = smaregi_em
    em.add_fault(match=".*", latency_s=5)  # Smaregi hanging does not slow the acknowledgement
    started = time.monotonic()
    assert send(client, edited(taro["customerId"])).status_code == 200
    assert time.monotonic() - started < 1.0


# -- what the register changes ----------------------------------------------------------------------------------
def test_a_rank_edited_at_the_register_shows_on_the_storefront_within_seconds(services, taro, smaregi_em):
    em, _ = smaregi_em
    app = create_app(services=services)
    stop = threading.Event()
    worker = threading.Thread(target=Worker(services, "live").run, args=(stop,), daemon=True)
    with serving(app) as app_url:
        em.webhooks.configure(f"{app_url}/smaregi/webhooks", SECRET)
        worker.start()
        try:
            client = app.test_client()
            assert balance(client, services).json["member"]["rank"] == "gold"
            em.edit_member(CONTRACT, taro["customerId"], rank="platinum")
            changed_at, shown = time.monotonic(), None
            while time.monotonic() - changed_at < 10:
                shown = balance(client, services).json["member"]["rank"]
                if shown == "platinum":
                    break
                time.sleep(0.2)
            took = time.monotonic() - changed_at
        finally:
            stop.set()
            worker.join(10)
    assert shown == "platinum" and took < 5
    with services.db.transaction() as s:
        assert s.scalar(select(DirectoryMember.rank).where(
            DirectoryMember.smaregi_customer_id == taro["customerId"])) == "platinum"


def test_with_webhooks_the_directory_answers_the_rank_without_an_extra_read(services, client, taro, smaregi_em):
    em, _ = smaregi_em
    before = em.stats["requests"]
    assert balance(client, services).json["member"]["rank"] == "gold"
    assert em.stats["requests"] - before == 2  # points and transactions only


def test_a_member_deleted_at_the_register_shows_on_the_link_and_the_shopper_is_not_registered(
        services, client, taro, smaregi_em):
    em, _ = smaregi_em
    assert balance(client, services).status_code == 200
    em.delete_member(CONTRACT, taro["customerId"])
    assert send(client, edited(taro["customerId"], action="deleted")).status_code == 200
    Worker(services, "w").drain()
    assert link(services).member_status == "deleted"
    with services.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(BalanceSnapshot)) == 0
        assert s.scalar(select(func.count()).select_from(DirectoryMember).where(
            DirectoryMember.smaregi_customer_id == taro["customerId"])) == 0
    resp = balance(client, services)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_registered"
    token = app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP)
    problems = client.get("/admin/api/sync/problems", headers={"Authorization": f"Bearer {token}"}).json["problems"]
    assert [(p["customer_id"], p["state"], p["member_status"]) for p in problems] == [
        (TARO, "member_deleted", "deleted")]


def test_a_member_withdrawn_at_the_register_is_not_registered_and_coming_back_restores_it(
        services, client, taro, smaregi_em):
    em, _ = smaregi_em
    em.edit_member(CONTRACT, taro["customerId"], status="3")  # 退会
    send(client, edited(taro["customerId"]))
    Worker(services, "w").drain()
    assert link(services).member_status == "withdrawn"
    assert balance(client, services).json["error"]["code"] == "not_registered"
    em.edit_member(CONTRACT, taro["customerId"], status="0")
    send(client, edited(taro["customerId"]))
    Worker(services, "w").drain()
    assert link(services).member_status == "active"
    assert balance(client, services).json["points"]["balance"] == 1250


def test_a_code_changed_at_the_register_is_the_links_code_from_then_on(services, client, taro, smaregi_em):
    # Review finding R13: reconciling a point change looks the member's transactions up by code.
    em, _ = smaregi_em
    assert link(services).member_code == str(TARO)
    em.edit_member(CONTRACT, taro["customerId"], customerCode="STORE-0001")
    send(client, edited(taro["customerId"]))
    Worker(services, "w").drain()
    assert link(services).member_code == "STORE-0001"
    assert em.member_by_code(CONTRACT, "STORE-0001")["customerId"] == taro["customerId"]  # not written back


def test_an_edit_event_arriving_after_the_deletion_cannot_bring_the_member_back(services, client, taro, smaregi_em):
    em, _ = smaregi_em
    em.delete_member(CONTRACT, taro["customerId"])
    send(client, edited(taro["customerId"], action="deleted"))
    send(client, edited(taro["customerId"], action="edited"))  # older event, delivered late
    Worker(services, "w").drain()
    assert link(services).member_status == "deleted"


def test_a_sale_at_the_register_makes_the_next_balance_read_live(services, client, taro, smaregi_em):
    em, _ = smaregi_em
    assert balance(client, services).json["points"]["balance"] == 1250
    sale = em.add_sale(CONTRACT, taro["customerId"], earned=50)
    assert balance(client, services).json["points"]["balance"] == 1250  # within the 5 s reuse window
    send(client, {"contractId": CONTRACT, "event": "pos:transactions", "action": "created",
                  "transactionHeadIds": [sale["transactionHeadId"]]})
    Worker(services, "w").drain()
    assert balance(client, services).json["points"]["balance"] == 1300


def test_a_failing_read_is_retried_later_and_the_event_is_not_lost(services, client, taro, smaregi_em):
    em, _ = smaregi_em
    em.edit_member(CONTRACT, taro["customerId"], rank="silver")
    em.add_fault(match=r"GET .*/customers/\d+$", status=500, count=3)
    send(client, edited(taro["customerId"]))
    Worker(services, "w").drain()
    with services.db.transaction() as s:
        event = s.scalar(select(SmaregiEvent))
        assert event.processed_at is None and event.attempts == 1
        event.next_attempt_at = event.received_at  # due again now
    Worker(services, "w").drain()
    with services.db.transaction() as s:
        assert s.scalar(select(SmaregiEvent.processed_at)) is not None
        assert s.scalar(select(DirectoryMember.rank)) == "silver"


# -- rank for a member linked by code and not in the directory ------------------------------------------------
def test_a_member_linked_by_code_and_missing_from_the_directory_shows_its_current_rank(
        services, client, taro, smaregi_em):
    em, _ = smaregi_em
    with services.db.transaction() as s:
        s.query(DirectoryMember).delete()
    em.edit_member(CONTRACT, taro["customerId"], rank="silver")
    body = balance(client, services).json
    assert body["member"] == {"code": str(TARO), "rank": "silver", "rank_label": "silver"}
    with services.db.transaction() as s:  # remembered, so the webhooks keep it current from now on
        assert s.scalar(select(DirectoryMember.rank)) == "silver"


# -- the stand-in emits them --------------------------------------------------------------------------------------
def test_the_stand_in_emits_member_and_point_webhooks_with_the_secret(smaregi_em, services):
    em, _ = smaregi_em
    received = []
    from flask import Flask, request

    sink = Flask("sink")

    @sink.post("/hook")
    def hook():
        received.append((dict(request.headers), request.get_json()))
        return "", 200

    with serving(sink) as sink_url:
        em.webhooks.configure(f"{sink_url}/hook", "s3cret", duplicate=True)
        member = em.add_member(CONTRACT, customerCode="C-1", lastName="a", firstName="b")
        em.edit_member(CONTRACT, member["customerId"], rank="gold")
        client = services.smaregi.contract(CONTRACT)
        client.add_points(member["customerId"], 10)
        em.delete_member(CONTRACT, member["customerId"])
        em.webhooks.flush()
    kinds = [(body["event"], body["action"]) for _, body in received]
    assert kinds == [("pos:customers", "edited")] * 2 + [("pos:transactions", "created")] * 2 + \
        [("pos:customers", "deleted")] * 2
    headers, body = received[0]
    assert headers["X-Pointbridge-Secret"] == "s3cret" and headers["Smaregi-Contract-Id"] == CONTRACT
    assert headers["Smaregi-Event"] == "pos:customers" and received[1][0]["Smaregi-Event-Id"] == headers["Smaregi-Event-Id"]
    assert body == {"contractId": CONTRACT, "event": "pos:customers", "action": "edited",
                    "customerIds": [member["customerId"]]}
    assert all(isinstance(i, str) for _, b in received for i in b.get("transactionHeadIds", []))


def test_a_webhook_secret_that_cannot_be_a_header_value_stops_start_up():
    from app.config import ConfigError, load_config

    from .conftest import DEV_ENV

    with pytest.raises(ConfigError, match=r"^SMAREGI_WEBHOOK_SECRET: "):
        load_config({**DEV_ENV, "SMAREGI_WEBHOOK_SECRET": "two words"})
    assert load_config({**DEV_ENV, "SMAREGI_WEBHOOK_SECRET": SECRET}).smaregi_webhook_secret == SECRET
    assert load_config(DEV_ENV).smaregi_webhook_secret is None


def test_a_bulk_update_is_read_by_id_range_and_a_register_edit_goes_first(
        services, client, taro, smaregi_em):
    em, _ = smaregi_em
    bulk = [em.add_member(CONTRACT, customerCode=f"B-{n}", lastName="a", firstName="b", rank="silver")["customerId"]
            for n in range(40)]
    send(client, edited(*bulk, action="bulk-update"))
    em.edit_member(CONTRACT, taro["customerId"], rank="platinum")
    send(client, edited(taro["customerId"]))  # arrives after the bulk event
    from app.sync import smaregi_events

    before = em.stats["requests"]
    assert smaregi_events.drain(services, "w", limit=1) == 1
    with services.db.transaction() as s:  # the register's edit was taken first
        assert s.scalar(select(DirectoryMember.rank).where(
            DirectoryMember.smaregi_customer_id == taro["customerId"])) == "platinum"
        assert s.scalar(select(SmaregiEvent.processed_at).where(SmaregiEvent.action == "bulk-update")) is None
    assert smaregi_events.drain(services, "w") == 1
    assert em.stats["requests"] - before < 5  # not forty reads
    send(client, edited(*bulk, action="bulk-update"))  # the next bulk event: one range read again
    before = em.stats["requests"]
    smaregi_events.drain(services, "w")
    assert em.stats["requests"] - before == 1
    with services.db.transaction() as s:
        ranks = s.scalars(select(DirectoryMember.rank).where(DirectoryMember.smaregi_customer_id.in_(bulk))).all()
    assert len(ranks) == 40 and set(ranks) == {"silver"}


def test_the_stand_ins_bulk_jobs_send_bulk_events_and_the_directory_takes_them(services, taro, smaregi_em):
    em, _ = smaregi_em
    app = create_app(services=services)
    smaregi = services.smaregi.contract(CONTRACT)
    with serving(app) as app_url:
        em.webhooks.configure(f"{app_url}/smaregi/webhooks", SECRET)
        client = app.test_client()
        assert balance(client, services).json["member"]["rank"] == "gold"
        callback = f"{app_url}/smaregi/bulk-callback/not-ours"
        smaregi.bulk_create_customers([{"customerCode": f"N-{n}", "lastName": "a", "firstName": "b",
                                        "mailAddress": f"new{n}@example.com"} for n in range(30)], callback)
        smaregi.bulk_update_customers([{"customerId": taro["customerId"], "rank": "platinum"}], callback)
        deadline = time.monotonic() + 10
        while len(em.webhooks.target.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        sent = {s["body"]["action"]: s for s in em.webhooks.target.sent}
        assert set(sent) == {"bulk-created", "bulk-update"} and {s["status"] for s in sent.values()} == {200}
        assert len(sent["bulk-created"]["body"]["customerIds"]) == 30
        worker = Worker(services, "w")
        while worker.drain():
            pass
        shown = balance(client, services).json["member"]["rank"]
    assert shown == "platinum"  # the snapshot was dropped: the shopper sees the bulk edit
    with services.db.transaction() as s:
        assert s.scalar(select(DirectoryMember.rank).where(
            DirectoryMember.smaregi_customer_id == taro["customerId"])) == "platinum"
        assert [m.customer_code for m in directory.candidates_by_email(s, CONTRACT, "NEW7@example.com")] == ["N-7"]
        assert s.scalar(select(func.count()).select_from(SmaregiEvent).where(
            SmaregiEvent.processed_at.is_(None))) == 0
