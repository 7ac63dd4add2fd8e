"""Existing Shopify customers become Smaregi members once: bulk where nothing needs judging, the live
rules (matching.py) where something does; resumable, cancellable, newest state wins."""
from __future__ import annotations

from collections import Counter

import pytest

from app.sync import customer_import

from .conftest import CONTRACT, SHOP
from .import_support import make_world

BASE = 7_000_000_000_000


@pytest.fixture
def world(make_services, db_url, smaregi_em, shopify_em):
    yield from make_world(make_services, db_url, smaregi_em, shopify_em)


def seed_store(world, n_customers=1000, by_code=50, by_email=30, bad=20):
    """n customers: `by_code` whose id already is a store member's code, `by_email` with a store
    member of the same (verified) e-mail, one whose e-mail two store members share, `bad` with
    fields Smaregi would refuse; the rest are new."""
    em = world.smaregi
    ids = [BASE + i for i in range(n_customers)]
    for cid in ids[:by_code]:
        em.add_member(CONTRACT, customerCode=str(cid), lastName="旧姓", firstName="店頭")
        world.customer(cid, last="山田", first=f"code{cid % 1000}")
    email_members = {}
    for cid in ids[by_code:by_code + by_email]:
        member = em.add_member(CONTRACT, customerCode=f"S-{cid % 100000}", lastName="佐藤", firstName="花子",
                               mailAddress=f"Store{cid}@Example.com", points=300)
        email_members[cid] = member["customerId"]
        world.customer(cid, email=f"store{cid}@example.com", last="佐藤", first="花子")
    ambiguous = ids[by_code + by_email]
    for code in ("S-A1", "S-A2"):
        em.add_member(CONTRACT, customerCode=code, lastName="鈴木", firstName="一郎", mailAddress="shared@example.com")
    world.customer(ambiguous, email="shared@example.com", last="鈴木", first="一郎")
    bad_ids = ids[by_code + by_email + 1: by_code + by_email + 1 + bad]
    for cid in bad_ids:
        world.customer(cid, first="", last="名" * 120, phone="☎ call me", email="not-an-email",
                       address={"zip": "１２３４５６７８９０１２", "province": "東京都", "city": "渋谷区" * 40,
                                "address1": "1", "address2": None})
    for cid in ids[by_code + by_email + 1 + bad:]:
        world.customer(cid, email=f"new{cid}@example.com", phone="+81 90-1111-2222",
                       address={"zip": "150-0001", "province": "東京都", "city": "渋谷区", "address1": "神宮前1-2-3",
                                "address2": None})
    return ids, email_members, ambiguous, bad_ids


def test_a_thousand_customers_become_the_right_members_once(world):
    world.install()
    ids, email_members, ambiguous, bad_ids = seed_store(world)
    world.directory_ready()
    _, new = customer_import.start(world.services.db, world.shop_id)
    assert new

    final = world.run()

    assert final.contract_json() == {"state": "done", "counted": 1000, "linked": 80, "created": 919, "held": 1,
                                     "failed": 0}
    members = world.members()
    codes = Counter(m["customerCode"] for m in members)
    assert max(codes.values()) == 1  # no duplicate
    assert len(members) == 82 + 919
    links = world.links()
    for cid in ids:
        link = links[cid]
        if cid == ambiguous:
            assert link.state == "conflict" and link.smaregi_customer_id is None
            continue
        assert link.state == "synced", (cid, link.state, link.last_error)
        assert world.smaregi.contracts[CONTRACT].customers[link.smaregi_customer_id]["customerCode"] == str(cid)
    for cid, store_id in email_members.items():
        assert links[cid].smaregi_customer_id == store_id  # her store membership, with its points
        assert world.smaregi.balance(CONTRACT, store_id) == 300
    by_code = world.smaregi.member_by_code(CONTRACT, str(ids[0]))
    assert (by_code["lastName"], by_code["firstName"]) == ("山田", f"code{ids[0] % 1000}")  # brought up to date
    bad = world.smaregi.member_by_code(CONTRACT, str(bad_ids[0]))
    assert bad["firstName"] == "-" and len(bad["lastName"]) == 85  # cleaned as live sync does
    assert bad["phoneNumber"] is None and bad["mailAddress"] is None and bad["postCode"] is None
    held = customer_import.held_customers(world.services.db, world.shop_id)
    assert [h["customer_id"] for h in held] == [str(ambiguous)]
    stats = world.smaregi.stats
    assert stats["bulk_requests"] >= 10 and stats["bulk_members"] >= 919 + 50
    assert sum(stats["writes_by_second"].values()) < 150  # bulk, not 1,000 single writes
