"""A dev storefront: the block on a page, and an App Proxy that signs like Shopify.

Open / and pick a customer (or stay a guest) and a language. The block's requests to
/apps/points/* are forwarded to the app's /proxy/* with Shopify's query parameters (shop,
logged_in_customer_id, path_prefix, timestamp) and a real HMAC signature, as Shopify's proxy does.
"""
from __future__ import annotations

import os

import requests
from flask import Flask, Response, render_template_string, request, send_from_directory

from ..config import load_config
from ..logs import configure_logging
from .seed import CUSTOMERS, DEV_SHOP
from .signing import proxy_params, proxy_query
from .theme import EXTENSION, render_block

PAGE = """<!doctype html>
<html lang="{{ locale }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dev storefront · Pointbridge</title>
<style>body{font-family:system-ui,-apple-system,"Hiragino Sans",sans-serif;margin:0;background:#f6f6f7;color:#1f1f1f}
header{background:#fff;border-bottom:1px solid #ddd;padding:1rem 2rem}main{padding:2rem}
nav a{margin-right:1rem}nav a[aria-current]{font-weight:700}</style></head>
<body><header><strong>{{ shop }}</strong> — dev storefront
<nav aria-label="Signed-in customer">Customer:
<a href="?customer=&locale={{ locale }}" {% if not current %}aria-current="true"{% endif %}>Guest</a>
{% for c in customers %}<a href="?customer={{ c[0] }}&locale={{ locale }}" {% if current == c[0]|string %}aria-current="true"{% endif %}>{{ c[2] }} {{ c[1] }}</a>{% endfor %}
<a href="?customer=8840734670999&locale={{ locale }}" {% if current == '8840734670999' %}aria-current="true"{% endif %}>Not a member</a>
</nav><nav aria-label="Language"><a href="?customer={{ current }}&locale=ja">日本語</a><a href="?customer={{ current }}&locale=en">English</a></nav>
</header><main>{{ block }}</main></body></html>"""


def create_app(app_url: str, secret: str, shop: str = DEV_SHOP, extra_customers: dict | None = None) -> Flask:
    """`extra_customers`: more signed-in customers to pick by id (tests), as Liquid's `customer`."""
    app = Flask("dev_storefront")
    http = requests.Session()
    names = {str(cid): {"id": cid, "first_name": first, "last_name": last, "name": f"{last} {first}"}
             for cid, first, last, _ in CUSTOMERS}
    names["8840734670999"] = {"id": 8840734670999, "first_name": "Guest", "last_name": "Visitor", "name": "Visitor"}
    names.update(extra_customers or {})

    @app.get("/")
    def page():
        current = request.args.get("customer", request.cookies.get("dev_customer", ""))
        locale = request.args.get("locale", request.cookies.get("dev_locale", "ja"))
        # ?block=0: the same page without the block, the baseline of bench/storefront.py.
        block = "" if request.args.get("block") == "0" else render_block(customer=names.get(current), locale=locale)
        html = render_template_string(PAGE, block=block, shop=shop, customers=CUSTOMERS, current=current,
                                      locale=locale)
        resp = Response(html)
        # The "session": which customer Shopify would say is logged in, for the proxy below.
        resp.set_cookie("dev_customer", current, samesite="Lax")
        resp.set_cookie("dev_locale", locale, samesite="Lax")
        return resp

    @app.get("/assets/<path:name>")
    def assets(name: str):
        return send_from_directory(EXTENSION / "assets", name)

    @app.route("/apps/points/<path:subpath>", methods=["GET", "POST"])
    def proxy(subpath: str):
        customer = request.cookies.get("dev_customer", "")
        params = {**proxy_params(shop, customer or None), **request.args.to_dict(flat=False)}
        params = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in params.items()}
        upstream = http.request(request.method, f"{app_url}/proxy/{subpath}?{proxy_query(params, secret)}",
                                data=request.get_data(), timeout=10,
                                headers={"Content-Type": request.headers.get("Content-Type", "application/json"),
                                         "Accept": "application/json", "X-Forwarded-Host": shop})
        return Response(upstream.content, status=upstream.status_code,
                        content_type=upstream.headers.get("Content-Type"),
                        headers={"Cache-Control": upstream.headers.get("Cache-Control", "no-store")})

    return app


def main() -> None:
    config = load_config()
    configure_logging(config.log_level, development=config.is_development)
    port = int(os.environ.get("POINTBRIDGE_STOREFRONT_PORT", "8103"))
    app = create_app(f"http://127.0.0.1:{config.port}", config.shopify_api_secret)
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, app, threaded=True)


if __name__ == "__main__":
    main()
