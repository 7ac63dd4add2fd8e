"""Sign requests the way Shopify does, for the dev storefront, the dev runner, tests and benches.

Verification never uses this module: it goes through `shopifyapp` (app/shopify/verify.py).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from urllib.parse import urlencode

import jwt


def webhook_hmac(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def proxy_query(params: dict[str, str | list[str]], secret: str) -> str:
    """The query string Shopify forwards to the app proxy, with its hex `signature`."""
    message = "".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in sorted(params.items()))
    signature = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return urlencode({**params, "signature": signature}, doseq=True)


def proxy_params(shop: str, customer_id: int | str | None, *, timestamp: int | None = None,
                 path_prefix: str = "/apps/points") -> dict[str, str]:
    return {"shop": shop, "logged_in_customer_id": "" if customer_id is None else str(customer_id),
            "path_prefix": path_prefix, "timestamp": str(int(time.time()) if timestamp is None else timestamp)}


def app_home_id_token(api_key: str, secret: str, shop: str, *, ttl_s: int = 60, now: int | None = None) -> str:
    now = int(time.time()) if now is None else now
    return jwt.encode({"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": api_key, "sub": "1",
                       "exp": now + ttl_s, "nbf": now - 5, "iat": now, "jti": str(uuid.uuid4()),
                       "sid": str(uuid.uuid4())}, secret, "HS256")


def customer_account_token(api_key: str, secret: str, shop: str, customer_id: int | None, *,
                           ttl_s: int = 300, now: int | None = None) -> str:
    now = int(time.time()) if now is None else now
    claims = {"dest": shop, "aud": api_key, "exp": now + ttl_s, "nbf": now - 5, "iat": now,
              "jti": str(uuid.uuid4())}
    if customer_id is not None:
        claims["sub"] = f"gid://shopify/Customer/{customer_id}"
    return jwt.encode(claims, secret, "HS256")
