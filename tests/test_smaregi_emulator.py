"""The stand-in behaves like Smaregi where our safety depends on it (reference §11)."""
from __future__ import annotations

import requests

from app.dev.smaregi_emulator import SmaregiEmulator

from .conftest import serving


def _client(em: SmaregiEmulator, url: str, scope: str = "pos.customers:read pos.customers:write pos.transactions:read"):
    token = requests.post(f"{url}/app/sb_x/token", auth=("id", "secret"),
                          data={"grant_type": "client_credentials", "scope": scope}).json()["access_token"]
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def test_token_errors_match_smaregi():
    em = SmaregiEmulator(clients={"id": "secret"}, contracts=["sb_x"], reads_per_s=100, writes_per_s=100)
    with serving(em.create_app()) as url:
        assert requests.post(f"{url}/app/sb_x/token", auth=("id", "wrong"),
                             data={"grant_type": "client_credentials", "scope": "pos.customers:read"}).status_code == 401
        assert requests.post(f"{url}/app/sb_nope/token", auth=("id", "secret"),
                             data={"grant_type": "client_credentials", "scope": "pos.customers:read"}).status_code == 404
        bad_scope = requests.post(f"{url}/app/sb_x/token", auth=("id", "secret"),
                                  data={"grant_type": "client_credentials", "scope": "pos.everything"})
        assert bad_scope.status_code == 400 and bad_scope.headers["Content-Type"] == "application/problem+json"


def test_points_are_strings_lapse_on_read_and_never_go_negative():
    em = SmaregiEmulator(clients={"id": "secret"}, contracts=["sb_x"], reads_per_s=100, writes_per_s=100)
    member = em.add_member("sb_x", customerCode="C1", lastName="山田", firstName="太郎", points=800,
                           expires_on="2020-01-01")
    with serving(em.create_app()) as url:
        api = _client(em, url)
        rows = api.get(f"{url}/sb_x/pos/customers/point", params={"customer_id": member["customerId"]}).json()
        assert rows[0]["point"] == "0"  # expired points lapsed by the read itself
        kinds = [t["transactionHeadDivision"] for t in em.contracts["sb_x"].transactions]
        assert kinds == ["8"]
        add = api.post(f"{url}/sb_x/pos/customers/{member['customerId']}/point/add", json={"point": "300"}).json()
        assert add["point"] == "300" and len(add["transactionHeadIds"]) == 1
        too_much = api.post(f"{url}/sb_x/pos/customers/{member['customerId']}/point/add", json={"point": "-301"})
        assert too_much.status_code == 400 and too_much.json()["detail"].startswith("[point]")
        assert api.post(f"{url}/sb_x/pos/customers/{member['customerId']}/point/add",
                        json={"point": 5}).status_code == 400  # a JSON number is refused


def test_member_rules_and_scope_checks():
    em = SmaregiEmulator(clients={"id": "secret"}, contracts=["sb_x"], reads_per_s=100, writes_per_s=100)
    with serving(em.create_app()) as url:
        reader = _client(em, url, scope="pos.customers:read")
        assert reader.post(f"{url}/sb_x/pos/customers", json={"customerCode": "A", "lastName": "a",
                                                              "firstName": "b"}).status_code == 403
        api = _client(em, url)
        missing = api.post(f"{url}/sb_x/pos/customers", json={"customerCode": "A", "lastName": "a"})
        assert missing.status_code == 400 and missing.json()["detail"].startswith("[firstName]")
        long_code = api.post(f"{url}/sb_x/pos/customers", json={"customerCode": "X" * 21, "lastName": "a",
                                                                "firstName": "b"})
        assert long_code.json()["detail"].startswith("[customerCode]")
        kana = api.post(f"{url}/sb_x/pos/customers", json={"customerCode": "K", "lastName": "a", "firstName": "b",
                                                           "lastKana": "やまだ"})
        assert kana.status_code == 400
        created = api.post(f"{url}/sb_x/pos/customers", json={"customerCode": "A", "lastName": "a",
                                                              "firstName": "b"})
        assert created.status_code == 200 and created.json()["customerId"] == "1"
        assert api.patch(f"{url}/sb_x/pos/customers/99", json={"lastName": "z"}).status_code == 404
        window = api.get(f"{url}/sb_x/pos/transactions", params={"upd_date_time-from": "2026-01-01T00:00:00+09:00",
                                                                 "upd_date_time-to": "2026-03-01T00:00:00+09:00"})
        assert window.status_code == 400  # more than 31 days


def test_over_the_limit_is_429_with_retry_after():
    em = SmaregiEmulator(clients={"id": "secret"}, contracts=["sb_x"], reads_per_s=3)
    with serving(em.create_app()) as url:
        api = _client(em, url)
        statuses = [api.get(f"{url}/sb_x/pos/customers").status_code for _ in range(8)]
        assert 429 in statuses
        limited = next(r for r in (api.get(f"{url}/sb_x/pos/customers") for _ in range(5)) if r.status_code == 429)
        assert limited.headers["Retry-After"] == "1"
