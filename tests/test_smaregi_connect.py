"""Connecting Smaregi by proof: the admin's Connect button, Smaregi's sign-in (the stand-in), the
callback, and the finish in the shop's own admin. Only a sign-in finished by the admin of the shop
that started it binds a contract; every refused attempt changes nothing."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from sqlalchemy import func, select, update

from app import create_app
from app.dev.signing import proxy_query
from app.models import ScheduledJob, Shop, SmaregiConnection, SmaregiSignInState, utcnow

from .conftest import CONTRACT, SHOP
from .smaregi_connect_support import admin_token, connect, finish_in_admin, sign_in, start_connect

OTHER = "other-shop.myshopify.com"
THEIRS = "sb_theirs01"


@pytest.fixture
def client(services):
    return create_app(services=services).test_client()


def state_of(services) -> dict:
    """Everything a connection attempt could change."""
    with services.db.transaction() as s:
        return {"contracts": dict(s.execute(select(Shop.domain, Shop.smaregi_contract_id)).all()),
                "proofs": s.scalar(select(func.count()).select_from(SmaregiConnection)),
                "states": s.scalar(select(func.count()).select_from(SmaregiSignInState))}


def settings(client, services, shop=SHOP) -> dict:
    resp = client.get("/admin/api/settings", headers={"Authorization": f"Bearer {admin_token(services, shop)}"})
    assert resp.status_code == 200
    return resp.json


def test_a_sign_in_binds_the_contract_smaregi_names_and_records_the_proof(client, services, smaregi_em):
    em, _ = smaregi_em
    before = settings(client, services)
    assert (before["smaregi_contract_id"], before["smaregi_contract_source"]) == (CONTRACT, "environment")

    url = start_connect(client, services, SHOP)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{services.smaregi.id_base}/authorize?")
    assert query["response_type"] == ["code"] and query["scope"] == ["openid"]
    assert query["code_challenge_method"] == ["S256"] and len(query["state"][0]) >= 43
    assert query["redirect_uri"] == [f"{services.config.shopify_app_url}/smaregi/connect/callback"]
    with services.db.transaction() as s:
        stored = s.scalar(select(SmaregiSignInState))
        assert stored.state_hash != query["state"][0] and query["state"][0] not in stored.code_verifier_enc

    em.signin_contract = THEIRS
    back = sign_in(url)
    handed = client.get(back)  # the callback binds nothing: it sends the browser on to this shop's admin
    assert handed.status_code == 302 and handed.headers["Cache-Control"] == "no-store"
    assert handed.headers["Location"].startswith(
        f"https://{SHOP}/admin/apps/{services.config.shopify_api_key}/connection?smaregi_state=")
    assert settings(client, services)["smaregi_contract_source"] == "environment"
    resp = finish_in_admin(client, services, back, SHOP)
    assert resp.status_code == 200 and resp.json == {"contract_id": THEIRS, "changed": True}
    after = settings(client, services)
    assert (after["smaregi_contract_id"], after["smaregi_contract_source"]) == (THEIRS, "sign_in")
    assert after["smaregi_connected_at"]
    with services.db.transaction() as s:
        proof = s.scalar(select(SmaregiConnection))
        assert (proof.contract_id, s.get(Shop, proof.shop_id).domain) == (THEIRS, SHOP)
        assert s.scalar(select(ScheduledJob.next_run_at).where(ScheduledJob.name == "member_directory"))


def test_a_typed_contract_id_is_never_bound(client, services, smaregi_em):
    em, _ = smaregi_em
    assert connect(client, services, em, OTHER, THEIRS).status_code == 200  # THEIRS belongs to the other shop
    rules = {k: v for k, v in settings(client, services).items()
             if k in ("yen_per_point", "points_unit", "points_minimum", "points_daily_limit", "coupon_valid_days",
                      "rank_labels", "blank_name_placeholder", "keep_store_member_codes", "sync_enabled")}
    before = state_of(services)
    resp = client.put("/admin/api/settings", json={**rules, "smaregi_contract_id": THEIRS},
                      headers={"Authorization": f"Bearer {admin_token(services, SHOP)}"})
    assert resp.status_code == 200 and resp.json["smaregi_contract_id"] == CONTRACT
    assert state_of(services) == before


def test_a_contract_held_by_another_shop_is_bound_only_through_its_own_sign_in(client, services, smaregi_em):
    em, _ = smaregi_em
    connect(client, services, em, OTHER, THEIRS)
    assert connect(client, services, em, SHOP, THEIRS).status_code == 200  # the merchant signed in to it too
    with services.db.transaction() as s:
        proofs = s.execute(select(Shop.domain, SmaregiConnection.contract_id)
                           .join(Shop, Shop.id == SmaregiConnection.shop_id).order_by(SmaregiConnection.id)).all()
    assert [tuple(p) for p in proofs] == [(OTHER, THEIRS), (SHOP, THEIRS)]


def test_switching_contracts_matches_every_member_again_in_the_new_one(client, services, smaregi_em):
    from app.models import MemberLink
    from app.sync import directory
    from app.sync.worker import Worker
    from app.webhooks.dispatch import Delivery, record

    from .helpers import customer

    em, _ = smaregi_em
    em.contract(THEIRS)
    for contract_id in (CONTRACT, THEIRS):  # both directories imported: e-mail matching waits for them
        directory.import_pages(services.db, services.smaregi.contract(contract_id))
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer()))
    Worker(services, "w").drain()
    assert em.member_by_code(CONTRACT, "8840734670934") is not None
    connect(client, services, em, SHOP, THEIRS)
    Worker(services, "w").drain()
    member = em.member_by_code(THEIRS, "8840734670934")
    with services.db.transaction() as s:
        link = s.scalar(select(MemberLink))
    assert member is not None and (link.state, link.smaregi_customer_id) == ("synced", member["customerId"])


# -- the callback: `state` is its only credential ---------------------------------------------------------------
def callback(client, services, **params):
    return finish_in_admin(client, services, "/smaregi/connect/callback?" + urlencode(params), SHOP)


@pytest.mark.parametrize("case", ["no_state", "forged", "expired", "reused", "wrong_state_fault", "denied",
                                  "another_sign_ins_code", "two_states"])
def test_the_callback_refuses_anything_but_a_fresh_state_with_its_own_code(client, services, smaregi_em, case):
    em, _ = smaregi_em
    em.signin_contract = THEIRS
    settings(client, services)  # the shop exists (App Home was opened)
    if case == "reused":
        back = sign_in(start_connect(client, services, SHOP))
        assert finish_in_admin(client, services, back, SHOP).status_code == 200
        with services.db.transaction() as s:
            s.execute(update(Shop).values(smaregi_contract_id=None))  # so a replay would show
    before = state_of(services)
    if case == "no_state":
        code = parse_qs(urlsplit(sign_in(start_connect(client, services, SHOP))).query)["code"][0]
        before = state_of(services)
        resp = callback(client, services, code=code)
    elif case == "forged":
        resp = callback(client, services, code="x", state=uuid.uuid4().hex + uuid.uuid4().hex)
    elif case == "expired":
        back = sign_in(start_connect(client, services, SHOP))
        with services.db.transaction() as s:
            s.execute(update(SmaregiSignInState).values(expires_at=utcnow() - timedelta(seconds=1)))
        before = state_of(services)
        resp = finish_in_admin(client, services, back, SHOP)
    elif case == "reused":
        resp = finish_in_admin(client, services, back, SHOP)
    elif case == "wrong_state_fault":
        em.signin_fault = "wrong_state"
        resp = finish_in_admin(client, services, sign_in(start_connect(client, services, SHOP)), SHOP)
        before["states"] += 1
    elif case == "denied":
        em.signin_fault = "denied"
        resp = finish_in_admin(client, services, sign_in(start_connect(client, services, SHOP)), SHOP)
        before["states"] += 1
    elif case == "another_sign_ins_code":
        first = parse_qs(urlsplit(sign_in(start_connect(client, services, SHOP))).query)
        second = parse_qs(urlsplit(start_connect(client, services, SHOP)).query)
        before["states"] += 2
        resp = callback(client, services, code=first["code"][0], state=second["state"][0])  # PKCE: not this start's code
    else:
        first = parse_qs(urlsplit(sign_in(start_connect(client, services, SHOP))).query)
        before["states"] += 1
        resp = finish_in_admin(client, services, f"/smaregi/connect/callback?code={first['code'][0]}"
                               f"&state={first['state'][0]}&state=x", SHOP)
    assert resp.status_code == 400
    assert THEIRS not in resp.get_data(as_text=True)
    assert state_of(services) == before
    assert settings(client, services)["smaregi_contract_source"] == "environment"


def test_a_state_binds_only_the_shop_it_was_issued_to(client, services, smaregi_em):
    em, _ = smaregi_em
    em.signin_contract = THEIRS
    mine = sign_in(start_connect(client, services, SHOP))
    start_connect(client, services, OTHER)  # the other shop is mid-connect too
    assert finish_in_admin(client, services, mine, OTHER).status_code == 400  # not the other shop's to finish
    assert finish_in_admin(client, services, mine, SHOP).status_code == 200
    with services.db.transaction() as s:
        contracts = dict(s.execute(select(Shop.domain, Shop.smaregi_contract_id)).all())
    assert contracts == {SHOP: THEIRS, OTHER: None}


def test_smaregi_failing_mid_sign_in_binds_nothing_and_says_so(client, services, smaregi_em):
    em, _ = smaregi_em
    em.signin_contract = THEIRS
    back = sign_in(start_connect(client, services, SHOP))
    em.add_fault(match=r"GET /userinfo", status=503)
    resp = finish_in_admin(client, services, back, SHOP)
    assert resp.status_code == 502 and resp.json["error"]["code"] == "connect_refused"
    assert settings(client, services)["smaregi_contract_id"] == CONTRACT


# -- the start API: only an admin session token of this shop -------------------------------------------------------
def _claims(shop: str, api_key: str) -> dict:
    now = int(time.time())
    return {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": api_key, "sub": "1",
            "exp": now + 60, "nbf": now - 5, "iat": now, "jti": str(uuid.uuid4()), "sid": str(uuid.uuid4())}


@pytest.mark.parametrize("credential", [
    "none", "forged_secret", "alg_none", "expired", "wrong_aud", "proxy_signature", "webhook_hmac",
    "customer_account_token",
    "dest_of_another_shop",
])
def test_connect_start_opens_only_with_this_shops_admin_session(client, services, credential):
    key, secret = services.config.shopify_api_key, services.config.shopify_api_secret
    claims = _claims(SHOP, key)
    headers = {}
    path = "/admin/api/smaregi/connect"
    if credential == "forged_secret":
        headers["Authorization"] = "Bearer " + jwt.encode(claims, "x" * 40, "HS256")
    elif credential == "alg_none":
        headers["Authorization"] = "Bearer " + jwt.encode(claims, None, "none")
    elif credential == "expired":
        headers["Authorization"] = "Bearer " + jwt.encode({**claims, "exp": int(time.time()) - 60}, secret, "HS256")
    elif credential == "wrong_aud":
        headers["Authorization"] = "Bearer " + jwt.encode({**claims, "aud": "another-app"}, secret, "HS256")
    elif credential == "dest_of_another_shop":
        headers["Authorization"] = "Bearer " + jwt.encode({**claims, "dest": f"https://{OTHER}"}, secret, "HS256")
    elif credential == "customer_account_token":
        now = int(time.time())
        token = jwt.encode({"dest": SHOP, "aud": key, "exp": now + 300, "nbf": now - 5, "iat": now,
                            "jti": str(uuid.uuid4()), "sub": "gid://shopify/Customer/8840734670934"}, secret, "HS256")
        headers["Authorization"] = f"Bearer {token}"
    elif credential == "proxy_signature":
        path += "?" + proxy_query({"shop": SHOP, "logged_in_customer_id": "8840734670934",
                                   "path_prefix": "/apps/points", "timestamp": str(int(time.time()))}, secret)
    elif credential == "webhook_hmac":
        from app.dev.signing import webhook_hmac

        headers.update({"X-Shopify-Hmac-Sha256": webhook_hmac(b"{}", secret), "X-Shopify-Shop-Domain": SHOP})
    before = state_of(services)
    resp = client.post(path, headers=headers, data=b"{}" if credential == "webhook_hmac" else None)
    assert resp.status_code == 401 and "authorize_url" not in resp.get_data(as_text=True)
    assert state_of(services) == before


def test_another_shops_session_starts_a_sign_in_for_that_shop_only(client, services, smaregi_em):
    em, _ = smaregi_em
    em.signin_contract = THEIRS
    assert finish_in_admin(client, services, sign_in(start_connect(client, services, OTHER)), OTHER).status_code == 200
    with services.db.transaction() as s:
        contracts = dict(s.execute(select(Shop.domain, Shop.smaregi_contract_id)).all())
    assert contracts[OTHER] == THEIRS and contracts.get(SHOP) is None
    assert settings(client, services)["smaregi_contract_id"] == CONTRACT


# -- the stand-in's sign-in endpoints ---------------------------------------------------------------------------------
def test_the_stand_in_gives_a_code_once_for_the_right_verifier_and_redirect(services, smaregi_em):
    em, base = smaregi_em
    client_id, secret = services.config.smaregi_client_id, services.config.smaregi_client_secret
    from app.smaregi.signin import code_challenge

    def exchange(code, verifier="v" * 50, redirect_uri="https://app.example/cb"):
        return requests.post(f"{base}/authorize/token", auth=(client_id, secret), timeout=5, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier})

    def issue():
        return em.issue_code(CONTRACT, client_id=client_id, redirect_uri="https://app.example/cb",
                             code_challenge=code_challenge("v" * 50))

    assert exchange(issue(), verifier="w" * 50).status_code == 400
    assert exchange(issue(), redirect_uri="https://evil.example/cb").status_code == 400
    code = issue()
    ok = exchange(code)
    assert ok.status_code == 200 and exchange(code).status_code == 400  # once only
    info = requests.get(f"{base}/userinfo", headers={"Authorization": f"Bearer {ok.json()['access_token']}"},
                        timeout=5)
    assert info.json()["contract"]["id"] == CONTRACT
    assert requests.get(f"{base}/userinfo", headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
    assert requests.get(f"{base}/authorize", params={"client_id": "unknown", "redirect_uri": "https://x"},
                        allow_redirects=False, timeout=5).status_code == 400


def test_two_callbacks_racing_with_one_state_bind_once_and_reach_smaregi_once(pg_url, smaregi_em, shopify_em,
                                                                              make_services):
    import threading

    services = make_services(pg_url, smaregi_url=smaregi_em[1], shopify_url=shopify_em[1])
    em, _ = smaregi_em
    em.signin_contract = THEIRS
    app = create_app(services=services)
    back = sign_in(start_connect(app.test_client(), services, SHOP))
    em.add_fault(match=r"POST /authorize/token", latency_s=0.3)  # the winner is still talking to Smaregi
    requests_before = em.stats["requests"]
    barrier, statuses = threading.Barrier(2), []

    def hit():
        client = app.test_client()
        barrier.wait()
        statuses.append(finish_in_admin(client, services, back, SHOP).status_code)

    threads = [threading.Thread(target=hit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(statuses) == [200, 400]
    assert em.stats["requests"] - requests_before == 2  # one code exchange + one user info, from the winner
    assert state_of(services)["proofs"] == 1


def test_a_sign_in_link_started_by_another_shop_never_binds_the_victims_contract(client, services, smaregi_em):
    """Login CSRF (review R6): shop B's owner starts Connect and sends the Smaregi link to the merchant
    of contract THEIRS, who signs in as themselves. Their browser is sent on to shop B's admin, where
    they have no session; their own admin cannot finish B's sign-in either."""
    em, _ = smaregi_em
    settings(client, services)
    url = start_connect(client, services, OTHER)  # the attacker's own shop and admin session
    em.signin_contract = THEIRS
    victim = create_app(services=services).test_client()
    back = sign_in(url)
    handed = victim.get(back)
    assert handed.status_code == 302 and urlsplit(handed.headers["Location"]).netloc == OTHER
    before = state_of(services)
    assert finish_in_admin(victim, services, back, SHOP).status_code == 400  # the victim's own admin
    assert victim.post("/admin/api/smaregi/connect/finish", json={"state": "x", "code": "y"}).status_code == 401
    assert state_of(services) == before and before["contracts"].get(OTHER) is None
