"""Engine and sessions. One session per request or per job; `transaction()` is the unit of work."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

# A database error's text would otherwise end with the statement's parameters: a customer's
# e-mail, phone and name, straight into the logs. Every engine (migrations too) hides them.
HIDE_PARAMETERS = True

class Database:
    def __init__(self, url: str, *, max_connections: int = 20):
        self.url = url
        self.is_postgres = url.startswith("postgresql")
        if self.is_postgres:
            # No pre-ping: it costs a round trip per checkout on the webhook hot path. A connection
            # the server dropped fails one statement and is discarded; recycling bounds their age.
            # Every connection opened is kept (no overflow): an overflow connection is closed when
            # it is returned, so each burst of shoppers would open it again (a new backend, its
            # statements prepared again) on the shoppers' clock.
            pool = {"pool_size": max_connections, "max_overflow": 0, "pool_recycle": 300}
            self.engine: Engine = create_engine(url, **pool, hide_parameters=HIDE_PARAMETERS)
            # For writes that are worth nothing after a database crash (rate-limit slots, the
            # balance cache): each is its own transaction, and its commit does not wait for the
            # WAL flush (about 3 ms here, against 0.3 ms). Never for points or anything a user gave us.
            self.ephemeral: Engine = create_engine(
                url, **pool, hide_parameters=HIDE_PARAMETERS,
                isolation_level="AUTOCOMMIT", connect_args={"options": "-c synchronous_commit=off"})
            # Durable like `engine`, but each statement commits by itself: psycopg sends BEGIN as a
            # round trip of its own, so a transaction costs two round trips besides its statements.
            self.autocommit_engine: Engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            ensure_sqlite_folder(url)
            self.engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                        hide_parameters=HIDE_PARAMETERS)
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
            # SQLite's transactions are local calls, and its BEGIN IMMEDIATE serialises writers.
            self.ephemeral = self.engine
            self.autocommit_engine = self.engine  # a local transaction costs no round trip
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._autocommit_sessions = sessionmaker(self.autocommit_engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success, roll back on any exception."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def autocommit(self) -> Iterator[Session]:
        """For statements that each stand alone: reads (under READ COMMITTED each statement sees
        its own snapshot anyway) or one write that is a whole unit. On Postgres each commits, as
        durably as in `transaction()`, without the BEGIN and COMMIT round trips; on SQLite this
        is `transaction()`."""
        with self._autocommit_sessions.begin() as session:
            yield session

    def session(self) -> Session:
        return self._sessions()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        self.ephemeral.dispose()


def ensure_sqlite_folder(url: str) -> None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # The driver's own transaction handling is switched off so that `begin` below decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn) -> None:
    # SQLite's deferred BEGIN lets two writers both read, then one fails to upgrade its lock
    # ("database is locked") instead of waiting. IMMEDIATE takes the write lock up front, which
    # serialises our few writers (web, worker) the way row locks do on Postgres.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_ignoring_conflict(session, model, values: dict, conflict_columns: list[str] | None = None):
    """INSERT … ON CONFLICT DO NOTHING on either engine (any unique index when no columns are
    named). Returns the inserted primary key, or None when the row already existed."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    pk = next(iter(model.__table__.primary_key.columns))
    stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=conflict_columns).returning(pk)
    return session.execute(stmt).scalar()
