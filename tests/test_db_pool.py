"""The pools keep the connections a burst opens: the next burst reuses them, none is opened again."""
from __future__ import annotations

from contextlib import ExitStack

import pytest
from sqlalchemy import text

from app.db import Database


@pytest.mark.postgres
@pytest.mark.parametrize("engine", ["engine", "ephemeral"])
def test_a_second_burst_reuses_every_connection_the_first_opened(pg_migrated, engine):
    db = Database(pg_migrated, max_connections=4)
    pool = getattr(db, engine)

    def burst() -> set[int]:
        with ExitStack() as stack:  # all four checked out at once, as a burst of shoppers does
            conns = [stack.enter_context(pool.connect()) for _ in range(4)]
            return {c.execute(text("SELECT pg_backend_pid()")).scalar() for c in conns}

    try:
        first = burst()
        assert len(first) == 4
        assert burst() == first
    finally:
        db.dispose()
