"""Route `shopifyapp`'s hard-coded https://{name}.myshopify.com URLs to SHOPIFY_ADMIN_API_BASE.

`shopifyapp` builds Shopify URLs itself but accepts an injected httpx.Client; a transport that
rewrites the origin lets the emulator, vcrpy cassettes and production share one code path.
"""
from __future__ import annotations

import functools

import httpx

MYSHOPIFY = ".myshopify.com"


def shop_domain(shop: str) -> str:
    """'example' or 'example.myshopify.com' or 'https://example.myshopify.com' → 'example.myshopify.com'."""
    shop = shop.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    return shop if shop.endswith(MYSHOPIFY) else shop + MYSHOPIFY


class AdminBaseTransport(httpx.BaseTransport):
    def __init__(self, admin_base: str, inner: httpx.BaseTransport | None = None):
        self.admin_base = admin_base.rstrip("/")
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host.endswith(MYSHOPIFY) and self.admin_base != "https://{shop}":
            base = httpx.URL(self.admin_base.replace("{shop}", host))
            path = base.raw_path.rstrip(b"/") + request.url.raw_path
            request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port,
                                                raw_path=path)
            request.headers["Host"] = base.netloc.decode()
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@functools.cache
def admin_http_client(admin_base: str, timeout_s: float) -> httpx.Client:
    """A shared, pooled client per call budget (shopifyapp's own default is 30 s, far too long for a
    shopper). Shared because building one costs a TLS context and a new connection; httpx clients
    are safe to use from many threads."""
    return httpx.Client(transport=AdminBaseTransport(admin_base),
                        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)))
