from __future__ import annotations

from app import create_app
from app.config import load_config

from .conftest import make_env


def test_healthz_ok_when_the_database_answers(services):
    client = create_app(services=services).test_client()
    assert client.get("/healthz").json == {"status": "ok"}


def test_healthz_503_when_the_database_does_not():
    config = load_config(make_env("postgresql://nobody@127.0.0.1:1/none"))
    client = create_app(config).test_client()
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.json["status"] == "unavailable"
