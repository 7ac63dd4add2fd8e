"""Connecting a shop to a Smaregi contract the way a merchant does: the admin's Connect button,
the sign-in at (the stand-in of) Smaregi ID, Smaregi's redirect back to our callback, and the
callback's redirect on into the shop's admin, which finishes with its session token."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from app.dev.signing import app_home_id_token


def admin_token(services, shop: str) -> str:
    return app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, shop)


def start_connect(client, services, shop: str) -> str:
    """The authorize URL the admin's Connect Smaregi button opens."""
    resp = client.post("/admin/api/smaregi/connect", headers={"Authorization": f"Bearer {admin_token(services, shop)}"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.json["authorize_url"]


def sign_in(authorize_url: str) -> str:
    """The browser at Smaregi: the stand-in approves at once and redirects; returns our callback's
    path and query."""
    resp = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert resp.status_code == 302, resp.text
    back = urlsplit(resp.headers["Location"])
    return f"{back.path}?{back.query}"


def finish_in_admin(client, services, back: str, shop: str):
    """Smaregi's redirect reaches our callback, which sends the browser to `shop`'s admin (App Home's
    connection page), which hands the code over with its session token. Returns the last response:
    the callback's refusal, or the finish API's answer."""
    resp = client.get(back)
    if resp.status_code != 302:
        return resp
    target = urlsplit(resp.headers["Location"])
    handed = {k: v[0] for k, v in parse_qs(target.query).items()}
    body = {k.removeprefix("smaregi_"): v for k, v in handed.items()}
    return client.post("/admin/api/smaregi/connect/finish", json=body,
                       headers={"Authorization": f"Bearer {admin_token(services, shop)}"})


def connect(client, services, em, shop: str, contract_id: str):
    """The whole round trip, signing in as a user of `contract_id`; returns the finish answer."""
    em.signin_contract = contract_id
    return finish_in_admin(client, services, sign_in(start_connect(client, services, shop)), shop)
