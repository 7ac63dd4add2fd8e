"""Smaregi app tokens (client credentials), one per contract, shared by every process.

Token requests count against the contract's write limit, so a token is fetched once, kept
encrypted in `smaregi_contracts`, cached in memory, and replaced 60 s before it expires. Only one
process fetches at a time (the contract row is locked while it does).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from ..crypto import TokenCipher
from ..db import Database
from ..models import SmaregiContract, utcnow
from .ratelimit import ensure_contract

EARLY_REFRESH_S = 60


@dataclass(frozen=True)
class AppToken:
    value: str
    expires_at: float  # unix time


class ContractTokens:
    def __init__(self, db: Database, cipher: TokenCipher, fetch: Callable[[str, float], tuple[str, int]],
                 reserve: Callable[[str, float], None]):
        """`fetch(contract_id, deadline)` asks Smaregi for a new token: returns (token, expires_in
        seconds). `reserve(contract_id, deadline)` takes a rate-limit slot for it."""
        self.db = db
        self.cipher = cipher
        self.fetch = fetch
        self.reserve = reserve
        self._memory: dict[str, AppToken] = {}
        self._lock = threading.Lock()

    def get(self, contract_id: str, deadline: float) -> str:
        cached = self._memory.get(contract_id)
        if cached and cached.expires_at - EARLY_REFRESH_S > time.time():
            return cached.value
        with self._lock:
            token = self._from_db(contract_id) or self._renew(contract_id, None, deadline)
            self._memory[contract_id] = token
            return token.value

    def invalidate(self, contract_id: str, value: str, deadline: float) -> None:
        """Smaregi said 401 for `value`: drop it here and in the database (unless already replaced)."""
        with self._lock:
            if (cached := self._memory.get(contract_id)) and cached.value == value:
                del self._memory[contract_id]
            self._memory[contract_id] = self._renew(contract_id, value, deadline)

    def _from_db(self, contract_id: str) -> AppToken | None:
        with self.db.transaction() as session:
            row = session.get(SmaregiContract, contract_id)
            return self._usable(row)

    def _renew(self, contract_id: str, stale: str | None, deadline: float) -> AppToken:
        # The slot is taken before the lock: the limiter writes to the database itself, and on
        # SQLite the lock below is the database's only write lock.
        self.reserve(contract_id, deadline)
        with self.db.transaction() as session:
            ensure_contract(session, contract_id)
            session.execute(update(SmaregiContract).where(SmaregiContract.contract_id == contract_id)
                            .values(token_locked_at=utcnow()))
            row = session.scalar(select(SmaregiContract).where(SmaregiContract.contract_id == contract_id)
                                 .execution_options(populate_existing=True))
            current = self._usable(row)
            if current and current.value != stale:
                return current  # another process renewed it while we waited for the lock
            value, expires_in = self.fetch(contract_id, deadline)
            row.access_token_enc = self.cipher.encrypt(value)
            row.access_token_expires_at = utcnow() + timedelta(seconds=expires_in)
            return AppToken(value, row.access_token_expires_at.timestamp())

    def _usable(self, row: SmaregiContract | None) -> AppToken | None:
        if row is None or not row.access_token_enc or row.access_token_expires_at is None:
            return None
        expires = row.access_token_expires_at.timestamp()
        if expires - EARLY_REFRESH_S <= time.time():
            return None
        return AppToken(self.cipher.decrypt(row.access_token_enc), expires)
