"""Smaregi's per-contract limit, kept across every web and worker process through the database.

Each request takes a slot in the counter row for (contract, read|write, current clock second) with
one conditional upsert (one statement, one transaction): the row's count goes up only while it is
below the caller's ceiling, so waiting never counts against anyone. The worker's scheduler deletes
old rows.

A shopper's request that is about to make several reads side by side reserves their slots in that
same statement (count + n within the ceiling, all in one second); its calls then take them from the
reservation without a round trip, only within that second. A slot reserved and not used only costs
quota. A 429 cancels every reservation of the contract in this process at once; one made in another
process is confirmed against the contract's `paused_until` (a read: the slots stay counted once)
when RESERVATION_TTL_S has passed since it was made or last confirmed.

Shoppers first, without leaving slots unused: background work (point grants, give-backs nobody
waits for) may fill a second at once up to the limit less the shoppers' share (SHOPPER_SHARE, at least one
slot), and that share only from LATE_S into the second, when no shopper has taken it and none has
sent anything of that kind for SHOPPERS_QUIET_S (a shopper converting now is likely to be followed
by others: while they are about, their share is theirs for the whole second). A shopper therefore
never waits on background work, except one arriving late in a second that background filled after a
quiet spell (then it waits for the next second: at most 1 - EDGE_GUARD_S - LATE_S).

A 429 from Smaregi fills every slot of the seconds Retry-After covers, for reads and writes: every
process sees a full contract, through the same single statement, until the pause is over; only a
caller that found its second full reads the contract's `paused_until`, to wait the pause out at once
(or give up when it is longer than the caller's deadline).
"""
from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..db import Database, insert_ignoring_conflict
from ..models import RateSlot, SmaregiContract
from .errors import ContractPaused

log = logging.getLogger(__name__)

# A request sent in the last few ms of a second may arrive in the next one by Smaregi's clock;
# such requests take a slot of the next second, and wait for it, unless a shopper's (below).
EDGE_GUARD_S = 0.03
# Background requests wait in a busy worker between their slot and the wire: their guard is wider.
BACKGROUND_EDGE_GUARD_S = 0.1
SHOPPER_SHARE = 0.1  # of each second's slots (at least one), kept for shoppers until LATE_S
LATE_S = 0.8  # into the second: reserved slots no shopper took go to background work
SHOPPERS_QUIET_S = 3  # …once no shopper has sent a request of that kind for this many seconds
PAUSED = 1 << 30  # a second's count while Smaregi asked us to wait: above any limit
JITTER_S = 0.01
# A reservation's calls are submitted together and mostly take their slots within a few ms; one that
# comes later (a busy pool, a slow lookup first) reads whether another process saw a 429 meanwhile.
RESERVATION_TTL_S = 0.2

# The current request's reservation: a context variable, so the pool threads its reads run in (in
# copies of its context) take from the same one.
_reserved: ContextVar[Reservation | None] = ContextVar("smaregi_reserved_slots", default=None)


class Reservation:
    """`left` slots of one contract's `second`, taken at once; current inside `with`."""

    def __init__(self, limiter: RateLimiter, contract_id: str, kind: str, second: int, left: int):
        self.contract_id, self.kind, self.second, self.left = contract_id, kind, second, left
        self._limiter = limiter
        self._confirmed_until = limiter.clock() + RESERVATION_TTL_S
        self._lock = threading.Lock()

    def take(self, contract_id: str, kind: str) -> bool:
        """One of the slots, only within the second they were counted in and while no process has
        seen a 429 for the contract."""
        limiter = self._limiter
        now = limiter.clock()
        with self._lock:
            if (contract_id, kind) != (self.contract_id, self.kind) or self.left == 0 \
                    or now > self.second + 1 - EDGE_GUARD_S or now < limiter.paused_here.get(contract_id, 0.0):
                return False
            if now > self._confirmed_until:
                paused_for = limiter._paused_for(contract_id)
                now = limiter.clock()  # the read took time: the slot must still be sent within its second
                if paused_for > 0:
                    limiter.paused_here[contract_id] = max(limiter.paused_here.get(contract_id, 0.0),
                                                           now + paused_for)
                    self.left = 0
                    return False
                if now > self.second + 1 - EDGE_GUARD_S:
                    return False
                self._confirmed_until = now + RESERVATION_TTL_S
            self.left -= 1
            return True

    def __enter__(self) -> Reservation:
        self._token = _reserved.set(self)
        return self

    def __exit__(self, *_exc) -> None:
        _reserved.reset(self._token)


class RateLimiter:
    def __init__(self, db: Database, reads_per_s: int, writes_per_s: int, clock=time.time, sleep=time.sleep):
        self.db = db
        # The slot's upsert is its own transaction (one round trip), not flushed to disk before
        # it answers: a count lost with a database crash costs at most a 429, which we honour.
        self._slots = db.ephemeral
        self.limits = {"read": reads_per_s, "write": writes_per_s}
        self.clock = clock
        self.sleep = sleep
        # contract → until when (clock) a 429 answered in this process pauses it: every reservation
        # here stops at once, without a statement.
        self.paused_here: dict[str, float] = {}

    def acquire(self, contract_id: str, kind: str, deadline: float | None = None, background: bool = False) -> None:
        """Block until a slot is ours. Raise ContractPaused if that would pass `deadline` (monotonic).
        `background`: nobody waits on this request, so shoppers' requests go first."""
        self._acquire(contract_id, kind, 1, deadline, background)

    def reserve(self, contract_id: str, kind: str, slots: int, deadline: float | None = None) -> Reservation:
        """A shopper's `slots` slots of one second, in one statement (as many as the limit allows:
        calls beyond them take their own). Waits and raises as `acquire` does."""
        slots = min(slots, self.limits[kind])
        second = self._acquire(contract_id, kind, slots, deadline, background=False)
        return Reservation(self, contract_id, kind, second, slots)

    def take_reserved(self, contract_id: str, kind: str) -> bool:
        """A slot from the current context's reservation, if it has one left for this second."""
        reservation = _reserved.get()
        return reservation is not None and reservation.take(contract_id, kind)

    def _acquire(self, contract_id: str, kind: str, slots: int, deadline: float | None, background: bool) -> int:
        limit = self.limits[kind]
        early = limit - max(1, math.ceil(limit * SHOPPER_SHARE)) if background else limit
        edge = BACKGROUND_EDGE_GUARD_S if background else EDGE_GUARD_S
        while True:
            now = self.clock()
            second = int(now)
            if now - second > 1 - edge:
                second += 1
            late = now >= second + LATE_S
            if self._take(contract_id, kind, second, early, slots, shopper=not background) or (
                    late and early < limit and not self._shoppers_about(contract_id, kind, second)
                    and self._take(contract_id, kind, second, limit, slots, shopper=False)):
                # A shopper's request sent now counts in the second it leaves too, when that has
                # room: wherever it lands it was counted, and nobody waits up to EDGE_GUARD_S.
                if second > now and (background or not self._take(contract_id, kind, second - 1, limit, slots,
                                                                  shopper=True)):
                    self._wait(second - now, deadline)
                return second
            # Full up to our ceiling: background tries the reserved slots late in this second; a
            # contract Smaregi paused waits the pause out (or gives up at once if it is too long).
            retry_at = second + 1 if early == limit or late else second + LATE_S
            wait = max(retry_at - now, self._paused_for(contract_id))
            self._wait(wait + random.uniform(0, JITTER_S), deadline)

    def pause(self, contract_id: str, seconds: float) -> None:
        """Smaregi said 429: every process stops sending to this contract for `seconds`."""
        now = self.clock()
        covered = range(int(now), math.ceil(now + seconds))
        self.paused_here[contract_id] = max(self.paused_here.get(contract_id, 0.0), now + seconds)
        with self.db.transaction() as session:
            ensure_contract(session, contract_id)
            until = datetime.fromtimestamp(now + seconds, UTC)
            session.execute(update(SmaregiContract).where(  # a shorter Retry-After never shortens a pause
                SmaregiContract.contract_id == contract_id,
                or_(SmaregiContract.paused_until.is_(None), SmaregiContract.paused_until < until))
                .values(paused_until=until))
            conn = session.connection()
            fill = _statements(conn.dialect.name).fill
            conn.execute(fill, [{"contract_id": contract_id, "kind": kind, "second": second}
                                for kind in self.limits for second in covered])
        log.warning("smaregi.contract_paused", extra={"contract_id": contract_id, "seconds": seconds})

    def _take(self, contract_id: str, kind: str, second: int, ceiling: int, slots: int, shopper: bool) -> bool:
        """One statement: `slots` slots of `second` if that leaves at most `ceiling` taken."""
        if ceiling < slots:
            return False
        with self._slots.begin() as conn:
            take = _statements(conn.dialect.name).take
            return conn.execute(take, {"contract_id": contract_id, "kind": kind, "second": second,
                                       "ceiling": ceiling, "slots": slots,
                                       "shopper": slots if shopper else 0}).first() is not None

    def _shoppers_about(self, contract_id: str, kind: str, second: int) -> bool:
        """Did a shopper send a request of `kind` in this second or the SHOPPERS_QUIET_S before it?
        Asked only by background work late in a second, so at most once a second per waiting caller."""
        with self._slots.begin() as conn:
            return conn.execute(_statements(conn.dialect.name).shoppers,
                                {"contract_id": contract_id, "kind": kind,
                                 "since": second - SHOPPERS_QUIET_S, "second": second}).first() is not None

    def _paused_for(self, contract_id: str) -> float:
        with self._slots.begin() as conn:  # one statement, no transaction round trips
            until = conn.execute(select(SmaregiContract.paused_until)
                                 .where(SmaregiContract.contract_id == contract_id)).scalar()
        return max(0.0, until.timestamp() - self.clock()) if until is not None else 0.0

    def _wait(self, seconds: float, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() + seconds > deadline:
            raise ContractPaused(seconds)
        self.sleep(seconds)


class _Statements(NamedTuple):
    take: Any
    fill: Any
    shoppers: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    """Built once: every Smaregi call passes through here, and building statements costs more than
    running them."""
    slots = RateSlot.__table__
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    row = insert(slots).values(contract_id=bindparam("contract_id"), kind=bindparam("kind"),
                               second=bindparam("second"))
    key = ["contract_id", "kind", "second"]
    # A fresh row starts at `slots` (never above the ceiling: see _take); a paused second is never fresh.
    taken = bindparam("slots", type_=slots.c.used.type)
    take = row.values(used=taken, shopper_used=bindparam("shopper")).on_conflict_do_update(
        index_elements=key, set_={"used": slots.c.used + taken,
                                  "shopper_used": slots.c.shopper_used + bindparam("shopper")},
        where=slots.c.used + taken <= bindparam("ceiling")).returning(slots.c.used)
    fill = row.values(used=PAUSED).on_conflict_do_update(index_elements=key, set_={"used": PAUSED})
    shoppers = (select(slots.c.second)
                .where(slots.c.contract_id == bindparam("contract_id"), slots.c.kind == bindparam("kind"),
                       slots.c.second.between(bindparam("since"), bindparam("second")), slots.c.shopper_used > 0)
                .limit(1))
    return _Statements(take, fill, shoppers)


def ensure_contract(session, contract_id: str) -> None:
    insert_ignoring_conflict(session, SmaregiContract, {"contract_id": contract_id}, ["contract_id"])
