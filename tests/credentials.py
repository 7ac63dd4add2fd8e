"""Every credential the app accepts, made the way Shopify and Smaregi make them, and their forgeries.

Written from Shopify's documentation (claim sets, signature bases), with hmac/PyJWT only: nothing
here imports the app, so a bug in the app's signing helpers cannot hide a bug in its verification.

- webhook: base64 HMAC-SHA256 of the raw body, header `X-Shopify-Hmac-Sha256`.
- app proxy: hex HMAC-SHA256 of the decoded query, `key=value` pairs sorted by key and joined with
  no separator (repeated keys: values joined with `,`), `signature` left out.
- App Home session token (document `?id_token=` or fetch `Authorization: Bearer`): HS256 with
  `iss` = `https://<shop>/admin`, `dest` = `https://<shop>`, `aud` = API key, `sub` = staff user
  id, `exp` (1 min), `nbf`, `iat`, `jti`, `sid`.
- customer-account session token: HS256 with `dest` = `<shop>`, `aud`, `sub` =
  `gid://shopify/Customer/<id>` (absent when nobody is signed in), `exp` (5 min), `nbf`, `iat`,
  `jti`; no `iss`.
- Smaregi webhook: the shared secret in `X-Pointbridge-Secret`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import urlencode

import jwt


def webhook_hmac(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def proxy_signature_base(params: dict[str, str | list[str]]) -> str:
    return "".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                   for k, v in sorted(params.items()) if k != "signature")


def proxy_signature(params: dict[str, str | list[str]], secret: str) -> str:
    return hmac.new(secret.encode(), proxy_signature_base(params).encode(), hashlib.sha256).hexdigest()


def proxy_params(shop: str, customer_id: int | None, *, timestamp: int | None = None) -> dict[str, str]:
    """What Shopify's proxy adds to every forwarded request."""
    return {"shop": shop, "logged_in_customer_id": "" if customer_id is None else str(customer_id),
            "path_prefix": "/apps/points", "timestamp": str(int(time.time()) if timestamp is None else timestamp)}


def signed_query(params: dict[str, str | list[str]], secret: str, signature: str | None = None) -> str:
    return urlencode({**params, "signature": signature or proxy_signature(params, secret)}, doseq=True)


def app_home_claims(api_key: str, shop: str, *, ttl_s: int = 60, user_id: str = "86421") -> dict:
    now = int(time.time())
    return {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": api_key, "sub": user_id,
            "exp": now + ttl_s, "nbf": now - 2, "iat": now - 2, "jti": str(uuid.uuid4()), "sid": uuid.uuid4().hex}


def customer_account_claims(api_key: str, shop: str, customer_id: int | None, *, ttl_s: int = 300) -> dict:
    now = int(time.time())
    claims = {"dest": shop, "aud": api_key, "exp": now + ttl_s, "nbf": now - 2, "iat": now - 2,
              "jti": str(uuid.uuid4())}
    if customer_id is not None:
        claims["sub"] = f"gid://shopify/Customer/{customer_id}"
    return claims


def sign(claims: dict, secret: str) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def alg_none(claims: dict) -> str:
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
