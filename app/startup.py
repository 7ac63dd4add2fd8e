"""Start-up failures as one line naming the variable, the same for every entry point.

`dev.py run`, the CLI (and so the worker and the release phase) and gunicorn's master call
`check_startup()` before doing anything else: the configuration is read, the database is opened,
and anything wrong is printed as `pointbridge: configuration error: VARIABLE: problem` with exit
status 2 — never a traceback, never a respawning worker.
"""
from __future__ import annotations

import sys
from typing import NoReturn

from .config import Config, ConfigError, load_config


def fail(message: str) -> NoReturn:
    print(f"pointbridge: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def _database_problem(config: Config) -> str | None:
    """Why the database cannot be opened, in words that carry no credentials; None when it can."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from .db import Database

    try:
        db = Database(config.database_url, max_connections=2)
    except OSError as exc:  # the SQLite folder cannot be created
        return f"cannot create the database folder ({exc.strerror})"
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        # The driver's first line says what failed (refused, unknown host, no such database, bad
        # password) without echoing the password itself.
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return f"cannot connect ({detail})"
    except SQLAlchemyError as exc:
        return f"cannot connect ({type(exc).__name__})"
    finally:
        db.dispose()
    return None


def check_startup(*, database: bool = True) -> Config:
    """The validated configuration, or exit with one line naming the variable at fault."""
    try:
        config = load_config()
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    if database:
        problem = _database_problem(config)
        if problem:
            fail(f"configuration error: DATABASE_URL: {problem}")
    return config
