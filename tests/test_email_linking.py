"""A store member is linked by e-mail only when Shopify says the customer's e-mail is verified.

Issue 10, finding 4: a customer with `verified_email: false` and a store member's address (in
another case) was linked, the member renamed, and its points converted. Now the link is held: the
store member stays as the register knows it until Shopify verifies the e-mail or the merchant
chooses.
"""
from __future__ import annotations

import json
import uuid

from app import create_app
from app.merchant import AdminShop, problems
from app.models import LinkState
from app.sync import operations
from app.sync.mapping import normalize_email
from app.web.admin_text import EN, JA

from .conftest import CONTRACT, SHOP
from .helpers import customer, proxy_url
from .test_member_sync import directory_ready, drain, link_of, members, queue_customer

HANAKO = 8840734670936


def unverified(**kw) -> dict:
    return {**customer(HANAKO, first="花子", last="鈴木", **kw), "verified_email": False}


def store_hanako(em, email="Hanako@Example.com"):
    return em.add_member(CONTRACT, customerCode="S-000101", lastName="佐藤", firstName="花子",
                         mailAddress=email, points=3000)


def as_the_register_knows_it(em, member_id):
    m = em.contracts[CONTRACT].customers[member_id]
    return m["customerCode"], m["lastName"], m["firstName"], m["mailAddress"], em.balance(CONTRACT, member_id)


def test_an_unverified_email_never_links_renames_or_spends_a_store_member(services, smaregi_em):
    em, _ = smaregi_em
    store = store_hanako(em)
    before = as_the_register_knows_it(em, store["customerId"])
    directory_ready(services)
    queue_customer(services, unverified(email="hanako@example.com"), topic="customers/create")
    drain(services)

    link = link_of(services, HANAKO)
    assert link.state == LinkState.HELD and link.smaregi_customer_id is None
    assert as_the_register_knows_it(em, store["customerId"]) == before  # not renamed, code kept, points kept
    assert len(members(em)) == 1  # and no second member for the same person

    # The shopper gets no member, so nothing to read or spend.
    client = create_app(services=services).test_client()
    secret = services.config.shopify_api_secret
    assert client.get(proxy_url(secret, "balance", HANAKO)).json["error"]["code"] == "not_registered"
    resp = client.post(proxy_url(secret, "conversions", HANAKO),
                       json={"points": 3000, "idempotency_key": str(uuid.uuid4())})
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_registered"
    assert em.balance(CONTRACT, store["customerId"]) == 3000

    # The merchant sees it, with the member they may choose and a plain reason in both languages.
    [problem] = problems(services, AdminShop(link.shop_id, SHOP))
    assert problem["state"] == "held"
    assert [c["smaregi_customer_id"] for c in problem["candidates"]] == [store["customerId"]]
    assert "verified" in EN["held_reason"] and "確認" in JA["held_reason"] and EN["held"] and JA["held"]
    assert operations.status_counts(services.db)["held"] == 1


def test_an_update_without_verification_keeps_it_held(services, smaregi_em):
    em, _ = smaregi_em
    store = store_hanako(em)
    before = as_the_register_knows_it(em, store["customerId"])
    directory_ready(services)
    queue_customer(services, unverified(email="hanako@example.com"))
    drain(services)
    queue_customer(services, {**unverified(email="hanako@example.com", minutes=1), "last_name": "田中"})
    drain(services)
    assert link_of(services, HANAKO).state == LinkState.HELD
    assert as_the_register_knows_it(em, store["customerId"]) == before


def test_a_later_update_showing_the_email_verified_links_the_held_customer(services, smaregi_em):
    em, _ = smaregi_em
    store = store_hanako(em)
    directory_ready(services)
    queue_customer(services, unverified(email="hanako@example.com"))
    drain(services)
    assert link_of(services, HANAKO).state == LinkState.HELD

    queue_customer(services, {**unverified(email="hanako@example.com", minutes=5), "verified_email": True})
    drain(services)
    link = link_of(services, HANAKO)
    assert (link.state, link.smaregi_customer_id, link.member_code) == (LinkState.SYNCED, store["customerId"], str(HANAKO))
    assert link.conflict_candidates is None and link.last_error is None
    assert len(members(em)) == 1
    assert em.contracts[CONTRACT].customers[store["customerId"]]["lastName"] == "鈴木"  # now Shopify's data
    assert em.balance(CONTRACT, store["customerId"]) == 3000
    assert operations.problems(services.db) == []


def test_the_merchant_may_link_a_held_customer_themselves(services, smaregi_em):
    em, _ = smaregi_em
    store = store_hanako(em)
    directory_ready(services)
    queue_customer(services, unverified(email="hanako@example.com"))
    drain(services)
    link = link_of(services, HANAKO)
    assert not operations.resolve_conflict(services.db, link.shop_id, link.id, "999")  # only a listed member
    assert operations.resolve_conflict(services.db, link.shop_id, link.id, store["customerId"])
    drain(services)
    assert (link_of(services, HANAKO).state, link_of(services, HANAKO).smaregi_customer_id) == (
        LinkState.SYNCED, store["customerId"])


def test_an_unverified_email_matching_no_store_member_still_becomes_a_member(services, smaregi_em):
    em, _ = smaregi_em
    directory_ready(services)
    queue_customer(services, unverified(email="new@example.com"))
    drain(services)
    [member] = members(em)
    assert member["customerCode"] == str(HANAKO)
    assert link_of(services, HANAKO).state == LinkState.SYNCED


def test_a_full_width_address_typed_at_the_register_matches(services, smaregi_em):
    em, _ = smaregi_em
    store = store_hanako(em, email="ＨＡＮＡＫＯ＠ｅｘａｍｐｌｅ．ｃｏｍ")
    directory_ready(services)
    queue_customer(services, customer(HANAKO, first="花子", last="佐藤", email="hanako@example.com"))
    drain(services)
    link = link_of(services, HANAKO)
    assert (link.state, link.smaregi_customer_id) == (LinkState.SYNCED, store["customerId"])
    assert len(members(em)) == 1


def test_a_full_width_unverified_address_is_held_like_any_other(services, smaregi_em):
    em, _ = smaregi_em
    store = store_hanako(em, email="hanako@example.com")
    before = as_the_register_knows_it(em, store["customerId"])
    directory_ready(services)
    queue_customer(services, unverified(email="ｈａｎａｋｏ＠ＥＸＡＭＰＬＥ．ｃｏｍ"))
    drain(services)
    assert link_of(services, HANAKO).state == LinkState.HELD
    assert as_the_register_knows_it(em, store["customerId"]) == before


def test_one_key_for_every_spelling_of_an_address():
    key = "hanako@example.com"
    for spelling in ("Hanako@Example.com", "ＨＡＮＡＫＯ＠ｅｘａｍｐｌｅ．ｃｏｍ", " hanako@EXAMPLE.COM "):
        assert normalize_email(spelling) == key
    assert normalize_email("STRASSE@example.com") == normalize_email("straße@example.com")  # case folding, not lower()
    assert normalize_email("hanako.s@example.com") != key  # no provider-specific folding
    assert normalize_email("no-at-sign") is None and normalize_email("a" * 250 + "@x.jp") is None


def test_directory_keys_written_before_the_upgrade_are_renormalised(tmp_path):
    from sqlalchemy import create_engine, text

    from app import migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0004")
    engine = create_engine(url)
    with engine.begin() as conn:  # the old key: NFC + lower()
        conn.execute(text("INSERT INTO member_directory (contract_id, smaregi_customer_id, email_normalized, refreshed_at) "
                          "VALUES ('c', '1', 'ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｃｏｍ', '2026-11-01 00:00:00'), "
                          "('c', '2', 'taro@example.com', '2026-11-01 00:00:00')"))
    migrate.upgrade(url)
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT email_normalized FROM member_directory ORDER BY smaregi_customer_id")).scalars()
        assert list(keys) == ["hanako@example.com", "taro@example.com"]
    engine.dispose()


def test_the_admin_lists_a_held_customer_and_only_this_shop_can_link_it(services, smaregi_em):
    from app.dev.signing import app_home_id_token

    em, _ = smaregi_em
    store = store_hanako(em)
    before = as_the_register_knows_it(em, store["customerId"])
    directory_ready(services)
    queue_customer(services, unverified(email="hanako@example.com"))
    drain(services)
    client = create_app(services=services).test_client()
    key, secret = services.config.shopify_api_key, services.config.shopify_api_secret

    def call(method, path, shop=SHOP, **kw):
        token = app_home_id_token(key, secret, shop)
        return client.open(f"/admin/api{path}", method=method, headers={"Authorization": f"Bearer {token}"}, **kw)

    [held] = call("GET", "/sync/problems").json["problems"]
    assert held["state"] == "held" and held["customer_id"] == HANAKO
    assert [c["customer_code"] for c in held["candidates"]] == ["S-000101"]
    assert call("GET", "/dashboard").json["members"]["held"] == 1
    other = "other-shop.myshopify.com"
    assert call("GET", "/sync/problems", shop=other).json["problems"] == []
    refused = call("POST", f"/sync/conflicts/{held['link_id']}/resolve", shop=other,
                   json={"smaregi_customer_id": store["customerId"]})
    assert refused.status_code == 400
    drain(services)
    assert link_of(services, HANAKO).state == LinkState.HELD
    assert as_the_register_knows_it(em, store["customerId"]) == before

    page = client.get(f"/?shop={SHOP}&host=x&locale=ja&id_token={app_home_id_token(key, secret, SHOP)}")
    boot = page.get_data(as_text=True).split('id="pb-admin">', 1)[1].split("</script>", 1)[0]
    assert json.loads(boot)["t"]["held_reason"] == JA["held_reason"]  # the page's words for a held link
    assert call("POST", f"/sync/conflicts/{held['link_id']}/resolve",
                json={"smaregi_customer_id": store["customerId"]}).json == {"resolved": True}
    drain(services)
    assert link_of(services, HANAKO).smaregi_customer_id == store["customerId"]


def test_a_store_member_linked_by_email_keeps_their_store_history(services, smaregi_em):
    """Linking rewrites the store member's code to the Shopify id; Smaregi files older transactions
    under the old code, so the balance reads both (issue 11: the history vanished)."""
    em, _ = smaregi_em
    store = store_hanako(em)
    em.add_sale(CONTRACT, store["customerId"], earned=120, total=12000)  # at the register, as S-000101
    directory_ready(services)
    queue_customer(services, {**unverified(email="hanako@example.com"), "verified_email": True})
    drain(services)
    assert em.contracts[CONTRACT].customers[store["customerId"]]["customerCode"] == str(HANAKO)
    resp = create_app(services=services).test_client().get(
        proxy_url(services.config.shopify_api_secret, "balance", HANAKO, extra={"locale": "en"}))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert {"label": "Store purchase", "points": 120} in [
        {k: h[k] for k in ("label", "points")} for h in resp.json["history"]]
