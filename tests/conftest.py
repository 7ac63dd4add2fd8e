"""Shared fixtures.

Engines: every `db_url` test runs on SQLite and on Postgres. Postgres is the server in
DATABASE_URL when that is a Postgres URL, else postgresql://postgres@127.0.0.1:5432/test. Each
test session creates its own database there and drops it at the end. With CI set, an unreachable
Postgres fails the run at start; on a laptop those tests skip with a one-line reason.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from app import migrate
from app.config import load_config, normalize_database_url
from app.db import Database
from app.dev.serving import serve_in_thread
from app.dev.shopify_emulator import ShopifyEmulator
from app.dev.smaregi_emulator import SmaregiEmulator
from app.models import Base
from app.services import Services

from .browser import browser  # noqa: F401 (a fixture, shared by the browser tests)

CONTRACT = "sb_test01"
SHOP = "pointbridge-test.myshopify.com"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_server_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else DEFAULT_PG


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://", 1)


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(_plain(_pg_server_url()), connect_timeout=3):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def pytest_sessionstart(session):
    reason = _pg_reachable()
    session.config._pg_unreachable = reason
    if reason and os.environ.get("CI"):
        pytest.exit(f"CI requires PostgreSQL at {_pg_server_url()} and it is unreachable ({reason})", returncode=3)


@pytest.fixture(autouse=True)
def fresh_settings_cache():
    """Each test starts with no cached shop settings (a new "process")."""
    from app.points.member import forget_settings

    forget_settings()
    yield
    forget_settings()


@pytest.fixture(scope="session")
def pg_server_url(request) -> Iterator[str]:
    reason = request.config._pg_unreachable
    if reason:
        pytest.skip(f"Postgres unreachable at {_pg_server_url()} ({reason}); Postgres tests skipped")
    base = _plain(_pg_server_url())
    name = f"pointbridge_test_{uuid.uuid4().hex[:10]}"
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created = True
        url = base.rsplit("/", 1)[0] + "/" + name
    except psycopg.Error:
        created, url = False, base  # no CREATEDB right: use the given (fresh, per .ci/run) database
    yield normalize_database_url(url)
    if created:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_migrated(pg_server_url) -> str:
    db = Database(pg_server_url)
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    db.dispose()
    migrate.upgrade(pg_server_url)
    return pg_server_url


def truncate_all(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        migrate.upgrade(url)
        return url
    url = request.getfixturevalue("pg_migrated")
    db = Database(url, max_connections=4)
    truncate_all(db)
    db.dispose()
    return url


@pytest.fixture
def pg_url(pg_migrated) -> str:
    db = Database(pg_migrated, max_connections=4)
    truncate_all(db)
    db.dispose()
    return pg_migrated


serving = serve_in_thread


DEV_ENV = {
    "POINTBRIDGE_ENV": "development",
    "SMAREGI_CONTRACT_ID": CONTRACT,
    "LOG_LEVEL": "WARNING",
}


@pytest.fixture
def smaregi_em() -> Iterator[tuple[SmaregiEmulator, str]]:
    config = load_config(DEV_ENV)
    em = SmaregiEmulator(clients={config.smaregi_client_id: config.smaregi_client_secret}, contracts=[CONTRACT],
                         reads_per_s=1000, writes_per_s=1000)
    with serving(em.create_app()) as url:
        yield em, url


@pytest.fixture
def shopify_em() -> Iterator[tuple[ShopifyEmulator, str]]:
    config = load_config(DEV_ENV)
    em = ShopifyEmulator(config.shopify_api_key, config.shopify_api_secret)
    with serving(em.create_app()) as url:
        yield em, url


def make_env(db_url: str, smaregi_url: str = "http://127.0.0.1:9", shopify_url: str = "http://127.0.0.1:9",
             **extra: str) -> dict[str, str]:
    return {**DEV_ENV, "DATABASE_URL": db_url, "SMAREGI_ID_BASE": smaregi_url, "SMAREGI_API_BASE": smaregi_url,
            "SHOPIFY_ADMIN_API_BASE": f"{shopify_url}/{{shop}}", "SMAREGI_READS_PER_S": "1000",
            "SMAREGI_WRITES_PER_S": "1000", **extra}


@pytest.fixture
def make_services():
    built: list[Services] = []

    def build(db_url: str, **kwargs) -> Services:
        services = Services.build(load_config(make_env(db_url, **kwargs)))
        built.append(services)
        return services

    yield build
    for s in built:
        s.db.dispose()


@pytest.fixture
def services(db_url, smaregi_em, shopify_em, make_services) -> Services:
    return make_services(db_url, smaregi_url=smaregi_em[1], shopify_url=shopify_em[1])


ROOT = Path(__file__).resolve().parent.parent
