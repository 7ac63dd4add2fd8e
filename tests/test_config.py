"""A wrong setting at start-up stops the app with one line naming the variable."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from app.config import DEV_SHOPIFY_API_SECRET, ConfigError, load_config

from .conftest import ROOT

PROD = {
    "SHOPIFY_API_KEY": "key", "SHOPIFY_API_SECRET": "secret", "SMAREGI_CLIENT_ID": "cid",
    "SMAREGI_CLIENT_SECRET": "csecret", "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgres://u:p@db.example.com:5432/pb",
}


def error_for(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(env)
    return info.value


def test_production_refuses_to_start_without_each_secret():
    for name in ("SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "SMAREGI_CLIENT_ID", "SMAREGI_CLIENT_SECRET",
                 "TOKEN_ENCRYPTION_KEY"):
        env = {k: v for k, v in PROD.items() if k != name}
        error = error_for(env)
        assert error.variable == name
        assert str(error).startswith(name) and "\n" not in str(error)


def test_production_refuses_the_development_values():
    assert error_for({**PROD, "SHOPIFY_API_SECRET": DEV_SHOPIFY_API_SECRET}).variable == "SHOPIFY_API_SECRET"


def test_development_supplies_local_defaults():
    config = load_config({"POINTBRIDGE_ENV": "development"})
    assert config.environment == "development"
    assert config.database_url.startswith("sqlite:///") and config.database_url.endswith("instance/pointbridge.db")
    assert config.shopify_api_version == "2026-10"
    assert config.shopify_admin_api_base == "https://{shop}"
    assert config.smaregi_api_base == "https://api.smaregi.dev"
    assert (config.smaregi_reads_per_s, config.smaregi_writes_per_s) == (10, 4)
    assert config.points.unit == 100 and config.points.daily_limit == 10000
    assert config.shopify_app_url == "http://127.0.0.1:8000"


def test_heroku_postgres_url_means_psycopg3():
    assert load_config(PROD).database_url == "postgresql+psycopg://u:p@db.example.com:5432/pb"
    plain = load_config({**PROD, "DATABASE_URL": "postgresql://u@h/pb"})
    assert plain.database_url == "postgresql+psycopg://u@h/pb"


def test_smaregi_env_picks_both_hosts_and_overrides_must_be_origins():
    prod = load_config({**PROD, "SMAREGI_ENV": "production"})
    assert (prod.smaregi_id_base, prod.smaregi_api_base) == ("https://id.smaregi.jp", "https://api.smaregi.jp")
    assert error_for({**PROD, "SMAREGI_API_BASE": "http://x:1/sb_1/pos"}).variable == "SMAREGI_API_BASE"
    assert error_for({**PROD, "SMAREGI_ENV": "staging"}).variable == "SMAREGI_ENV"


@pytest.mark.parametrize("name,value", [
    ("POINTS_UNIT", "ten"), ("POINTS_MINIMUM", "0"), ("SMAREGI_WRITES_PER_S", "-1"),
    ("SMAREGI_SYNC_ENABLED", "maybe"), ("SHOPIFY_API_VERSION", "2026-11"), ("TOKEN_ENCRYPTION_KEY", "short"),
    ("SHOPIFY_ADMIN_API_BASE", "https://example.com"), ("DATABASE_URL", "mysql://x/y"),
    ("SMAREGI_CONTRACT_ID", "sb/../x"), ("POINTS_EARN_YEN_PER_POINT", "-1"), ("POINTS_EARN_ON", "shipped"),
    ("POINTS_EARN_HOLD_DAYS", "two"), ("COUPON_RETURN_UNUSED", "sometimes"),
])
def test_malformed_values_name_their_variable(name, value):
    assert error_for({**PROD, name: value}).variable == name


def test_earning_rules_default_to_the_contract_and_0_turns_earning_off():
    rules = load_config(PROD).points
    assert (rules.earn_yen_per_point, rules.earn_on, rules.earn_hold_days, rules.coupon_return_unused) == \
        (100, "paid", 0, True)
    off = load_config({**PROD, "POINTS_EARN_YEN_PER_POINT": "0", "POINTS_EARN_ON": "fulfilled",
                       "COUPON_RETURN_UNUSED": "false"}).points
    assert (off.earn_yen_per_point, off.earn_on, off.coupon_return_unused) == (0, "fulfilled", False)


def test_sync_switch_reads_true_and_false():
    assert load_config({**PROD, "SMAREGI_SYNC_ENABLED": "false"}).smaregi_sync_enabled is False
    assert load_config(PROD).smaregi_sync_enabled is True


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "SMAREGI_", "POINTBRIDGE_",
                                                                     "TOKEN_", "DATABASE_URL"))}
    env.update(extra)
    return env


def test_cli_prints_one_line_and_exits_nonzero():
    proc = subprocess.run([sys.executable, "-m", "app.cli", "db", "upgrade"], cwd=ROOT, capture_output=True,
                          text=True, env=_clean_env(), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("pointbridge: configuration error: SHOPIFY_API_KEY: "
                                   "is required (set it in the environment)")


def test_gunicorn_master_stops_instead_of_respawning_workers():
    env = _clean_env(**{k: v for k, v in PROD.items() if k != "TOKEN_ENCRYPTION_KEY"})
    proc = subprocess.run([sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "-c",
                           "python:app.gunicorn_conf", "app:create_app()"], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "pointbridge" in line]
    assert lines == ["pointbridge: configuration error: TOKEN_ENCRYPTION_KEY: is required (set it in the environment)"]
    assert "Booting worker" not in proc.stderr
