"""`python -m app.cli …` (also installed as `pointbridge`): migrations, the worker, sync operations."""
from __future__ import annotations

import sys

import click

from .config import ConfigError, load_config


def _config():
    try:
        return load_config()
    except ConfigError as exc:
        click.echo(f"pointbridge: configuration error: {exc}", err=True)
        sys.exit(2)


@click.group()
def main() -> None:
    """Pointbridge operations."""


@main.group()
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (the Procfile release phase runs this)."""
    from . import migrate

    migrate.upgrade(_config().database_url, revision)


@db.command("downgrade")
@click.option("--revision", default="-1", show_default=True)
def db_downgrade(revision: str) -> None:
    """Revert migrations."""
    from . import migrate

    migrate.downgrade(_config().database_url, revision)


if __name__ == "__main__":
    main()
