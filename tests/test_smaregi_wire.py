"""The Smaregi client's wire format, from recorded interactions (tests/cassettes/smaregi/README.md)."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from app.models import SmaregiContract
from app.smaregi.errors import SmaregiBadRequest

from .conftest import CONTRACT
from .vcr_support import RECORDING, cassettes

ID_HOST, API_HOST = "https://id.smaregi.dev", "https://api.smaregi.dev"


@pytest.fixture
def wire(tmp_path, make_services, request):
    """A client for contract sb_test01: live against the emulator when recording, else cassette-only."""
    url = f"sqlite:///{tmp_path / 'wire.db'}"
    from app import migrate

    migrate.upgrade(url)
    if RECORDING:
        em, live = request.getfixturevalue("smaregi_em")
        services = make_services(url, smaregi_url=live)
        origins = {f"{live}/app/": f"{ID_HOST}/app/", f"{live}/": f"{API_HOST}/"}
    else:
        em, services, origins = None, make_services(url, smaregi_url=API_HOST), {}
        services.smaregi.id_base = ID_HOST
    cassette = cassettes("smaregi", origins)

    return em, services, services.smaregi.contract(CONTRACT), cassette


def test_token_then_create_member_sends_strings_and_reads_the_new_id(wire):
    _em, services, client, cassette = wire
    with cassette("create_member") as c:
        member = client.create_customer({"customerCode": "8840734670934", "lastName": "山田", "firstName": "太郎",
                                         "mailAddress": "taro@example.com", "mailReceiveFlag": 1})
        again = client.find_customer_by_code("8840734670934")
    token_request, create_request = c.requests[0], c.requests[1]
    assert token_request.method == "POST" and token_request.uri == f"{ID_HOST}/app/{CONTRACT}/token"
    assert b"grant_type=client_credentials" in token_request.body
    assert b"scope=pos.customers%3Aread+pos.customers%3Awrite+pos.transactions%3Aread" in token_request.body
    assert create_request.uri == f"{API_HOST}/{CONTRACT}/pos/customers"
    assert b'"mailReceiveFlag": "1"' in create_request.body  # numbers travel as strings
    assert member["customerId"] == again["customerId"] and isinstance(member["customerId"], str)
    assert len([r for r in c.requests if r.uri.endswith("/token")]) == 1  # the token is reused
    with services.db.transaction() as s:
        stored = s.get(SmaregiContract, CONTRACT)
        assert stored.access_token_enc and "SCRUBBED" not in stored.access_token_enc


def test_points_read_converts_numbers_and_dates(wire):
    em, _, client, cassette = wire
    if em:
        em.add_member(CONTRACT, customerCode="P-1", lastName="佐藤", firstName="花子", points=1250,
                      expires_on="2027-03-31")
    with cassette("read_points") as c:
        balance = client.get_points("1")
    assert c.requests[-1].uri == f"{API_HOST}/{CONTRACT}/pos/customers/point?customer_id=1&limit=1"
    assert (balance.points, balance.expires_on) == (1250, date(2027, 3, 31))


def test_429_waits_retry_after_then_succeeds(wire):
    em, services, client, cassette = wire
    if em:
        em.add_member(CONTRACT, customerCode="P-1", lastName="佐藤", firstName="花子", points=300)
        em.add_fault(match=r"GET .*/customers/point", status=429, count=1)
    with cassette("rate_limited_then_ok") as c:
        balance = client.get_points("1")
    assert [resp["status"]["code"] for req, resp in c.data if "point" in req.uri] == [429, 200]
    assert balance.points == 300
    with services.db.transaction() as s:
        assert s.scalar(select(SmaregiContract.paused_until)) is not None  # every process saw the pause


def test_problem_json_400_becomes_a_typed_error_naming_the_field(wire):
    _em, _, client, cassette = wire
    with cassette("duplicate_code_400"):
        client.create_customer({"customerCode": "DUP-1", "lastName": "a", "firstName": "b"})
        with pytest.raises(SmaregiBadRequest) as info:
            client.create_customer({"customerCode": "DUP-1", "lastName": "c", "firstName": "d"})
    assert info.value.status == 400 and info.value.field == "customerCode"
    assert "重複" in info.value.detail


def test_transactions_are_read_by_id_and_by_division_for_webhooks_and_the_audit(wire):
    from datetime import datetime, timedelta, timezone

    em, _, client, cassette = wire
    jst = timezone(timedelta(hours=9))
    if em:
        em.add_member(CONTRACT, customerCode="T-1", lastName="佐藤", firstName="花子", points=300)
    with cassette("transactions_by_id_and_division") as c:
        change = client.add_points("1", -30)
        head = client.get_transaction(change.transaction_ids[0])
        rows = client.list_point_transactions(division="7", updated_from=datetime(2026, 11, 20, tzinfo=jst),
                                              updated_to=datetime(2026, 12, 20, tzinfo=jst))
    get_one, listing = c.requests[-2], c.requests[-1]
    assert get_one.uri == f"{API_HOST}/{CONTRACT}/pos/transactions/{change.transaction_ids[0]}"
    assert listing.uri == (f"{API_HOST}/{CONTRACT}/pos/transactions?transaction_head_division=7"
                           "&upd_date_time-from=2026-11-20T00%3A00%3A00%2B09%3A00"
                           "&upd_date_time-to=2026-12-20T00%3A00%3A00%2B09%3A00&page=1&limit=1000&sort=transactionHeadId")
    assert (head["customerId"], head["transactionHeadDivision"], head["spendPoint"]) == ("1", "7", 30)
    assert [t["transactionHeadId"] for t in rows] == change.transaction_ids
