"""The composition root: builds every shared object once per process from the Config.

Web and worker both start here, so tests and the dev stand-ins swap only URLs in the Config.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from shopify_app import ShopifyApp

from .config import Config
from .crypto import TokenCipher
from .db import Database
from .shopify.admin import AdminClient
from .shopify.profile import read_shop_profile
from .shopify.tokens import ShopTokens
from .shopify.verify import ShopifyVerifier
from .smaregi.client import Smaregi
from .smaregi.ratelimit import RateLimiter
from .smaregi.signin import SmaregiSignIn


@dataclass
class Services:
    config: Config
    db: Database
    cipher: TokenCipher
    verifier: ShopifyVerifier
    shop_tokens: ShopTokens
    admin: AdminClient
    limiter: RateLimiter
    smaregi: Smaregi
    smaregi_sign_in: SmaregiSignIn

    @classmethod
    def build(cls, config: Config, db: Database | None = None) -> Services:
        db = db or Database(config.database_url)
        cipher = TokenCipher(config.token_encryption_keys)
        shopify_app = ShopifyApp(client_id=config.shopify_api_key, client_secret=config.shopify_api_secret,
                                 old_client_secret=config.shopify_old_api_secret)
        shop_tokens = ShopTokens(db, cipher, shopify_app, config.shopify_admin_api_base)
        limiter = RateLimiter(db, config.smaregi_reads_per_s, config.smaregi_writes_per_s)
        smaregi = Smaregi(id_base=config.smaregi_id_base, api_base=config.smaregi_api_base,
                          client_id=config.smaregi_client_id, client_secret=config.smaregi_client_secret,
                          db=db, cipher=cipher, limiter=limiter)
        admin = AdminClient(shopify_app, shop_tokens, config.shopify_admin_api_base, config.shopify_api_version)
        shop_tokens.after_install = functools.partial(read_shop_profile, db, admin)
        return cls(
            config=config,
            db=db,
            cipher=cipher,
            verifier=ShopifyVerifier(config.shopify_api_key, config.shopify_api_secret,
                                     config.shopify_old_api_secret),
            shop_tokens=shop_tokens,
            admin=admin,
            limiter=limiter,
            smaregi=smaregi,
            smaregi_sign_in=SmaregiSignIn(smaregi),
        )
