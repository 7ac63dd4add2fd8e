"""Smaregi's per-contract limit, kept across every web and worker process through the database.

Each request takes a slot in the counter row for (contract, read|write, current clock second);
the worker's scheduler deletes old rows.
An atomic upsert returns the new count; over the limit, the caller waits for the next second.
A 429 from Smaregi sets `paused_until` on the contract, which every process honours.
"""
from __future__ import annotations

import functools
import logging
import math
import random
import time
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..db import Database, insert_ignoring_conflict
from ..models import RateSlot, SmaregiContract, utcnow
from .errors import ContractPaused

log = logging.getLogger(__name__)

# A request sent in the last few ms of a second may arrive in the next one by Smaregi's clock;
# such requests take a slot of the next second instead.
EDGE_GUARD_S = 0.03
SHOPPER_SHARE = 0.1  # of each second's slots, kept for requests a shopper is waiting on


class RateLimiter:
    def __init__(self, db: Database, reads_per_s: int, writes_per_s: int, clock=time.time, sleep=time.sleep):
        self.db = db
        self.limits = {"read": reads_per_s, "write": writes_per_s}
        self.clock = clock
        self.sleep = sleep

    def acquire(self, contract_id: str, kind: str, deadline: float | None = None, background: bool = False) -> None:
        """Block until a slot is ours. Raise ContractPaused if that would pass `deadline` (monotonic).
        `background` work (point grants, give-backs nobody waits for) leaves SHOPPER_SHARE of each
        second to the shoppers' conversions and balance reads."""
        limit = self.limits[kind]
        if background and limit > 1:
            limit -= max(1, math.ceil(limit * SHOPPER_SHARE))
        while True:
            now = self.clock()
            second = int(now)
            if now - second > 1 - EDGE_GUARD_S:
                second += 1
            pause, used = self._take(contract_id, kind, second, now, limit if background else None)
            if pause > 0:
                self._wait(pause + random.uniform(0, 0.01), deadline)
                continue
            if used <= limit:
                if second > now:
                    self._wait(second - now, deadline)
                return
            self._wait(second + 1 - now + random.uniform(0, 0.01), deadline)  # this second is full

    def pause(self, contract_id: str, seconds: float) -> None:
        """Smaregi said 429: every process stops sending to this contract for `seconds`."""
        until = utcnow() + timedelta(seconds=seconds)
        with self.db.transaction() as session:
            ensure_contract(session, contract_id)
            session.execute(update(SmaregiContract).where(SmaregiContract.contract_id == contract_id)
                            .values(paused_until=until))
        log.warning("smaregi.contract_paused", extra={"contract_id": contract_id, "seconds": seconds})

    def _take(self, contract_id: str, kind: str, second: int, now: float, below: int | None) -> tuple[float, int]:
        """One transaction: how long the contract is paused for, else our place in this second.
        `below`: take a slot only while fewer than this are taken (background work must not
        count its waiting against a shopper's place in the second)."""
        with self.db.transaction() as session:
            conn = session.connection()
            paused, take, take_below = _statements(conn.dialect.name)
            until = conn.execute(paused, {"contract_id": contract_id}).scalar()
            pause = max(0.0, until.timestamp() - now) if until is not None else 0.0
            if pause > 0:
                return pause, 0
            params = {"contract_id": contract_id, "kind": kind, "second": second}
            if below is None:
                return 0.0, conn.execute(take, params).scalar_one()
            used = conn.execute(take_below, {**params, "below": below}).scalar()
            return 0.0, below + 1 if used is None else used

    def _wait(self, seconds: float, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() + seconds > deadline:
            raise ContractPaused(seconds)
        self.sleep(seconds)


@functools.cache
def _statements(dialect: str):
    """Built once: every Smaregi call passes through here, and building statements costs more than
    running them."""
    contracts, slots = SmaregiContract.__table__, RateSlot.__table__
    paused = select(contracts.c.paused_until).where(contracts.c.contract_id == bindparam("contract_id"))
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    take = insert(slots).values(contract_id=bindparam("contract_id"), kind=bindparam("kind"),
                                second=bindparam("second"), used=1)
    take_below = take.on_conflict_do_update(index_elements=["contract_id", "kind", "second"],
                                            set_={"used": slots.c.used + 1},
                                            where=slots.c.used < bindparam("below")).returning(slots.c.used)
    take = take.on_conflict_do_update(index_elements=["contract_id", "kind", "second"],
                                      set_={"used": slots.c.used + 1}).returning(slots.c.used)
    return paused, take, take_below


def ensure_contract(session, contract_id: str) -> None:
    insert_ignoring_conflict(session, SmaregiContract, {"contract_id": contract_id}, ["contract_id"])
