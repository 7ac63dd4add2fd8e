"""Apply or revert Alembic revisions programmatically (release phase, dev run, tests)."""
from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig

from .config import ROOT
from .db import ensure_sqlite_folder


def alembic_config(database_url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_sqlite_folder(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
