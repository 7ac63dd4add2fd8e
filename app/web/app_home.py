"""App Home: the embedded admin's first document load, and Shopify managed installation.

Shopify installs the app without calling us (scopes in shopify.app.toml); the first App Home load
brings `shop`, `host` and `id_token`. We verify the id token and, if the shop has no usable
offline token, exchange it for an expiring one. A bad or stale id token gets the response App
Bridge expects (redirect to the patch-id-token page, or 401 + X-Shopify-Retry-Invalid-Session-Request)
and nothing is stored. A validly signed token that is not App Home's, or whose `dest` is not the
request's `shop`, is refused (401 `invalid_signature`) and never exchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, render_template, request

from ..shopify.tokens import TokenExchangeFailed
from ..shopify.verify import ReloadWithNewToken
from . import import_text, services
from .admin_text import texts

bp = Blueprint("app_home", __name__)

PATCH_ID_TOKEN_PATH = "/auth/patch-id-token"


@dataclass(frozen=True)
class AdminPage:
    path: str
    template: str  # app/templates/admin/<template>.html: its own content and script blocks
    title: str  # key in admin_text


# The App Bridge navigation (s-app-nav) in this order; each page is its own document load.
PAGES = [
    AdminPage("/", "dashboard", "dashboard"),
    AdminPage("/connection", "connection", "setup"),
    AdminPage("/rules", "rules", "rules"),
    AdminPage("/members", "members", "members_and_failures"),
    AdminPage("/coupons", "coupons", "coupons_and_movements"),
    AdminPage("/data-requests", "data_requests", "privacy"),
]
CONVERSION_STATUSES = ["completed", "needs_review", "failed", "deducting", "compensating", "used", "returned",
                       "expired"]


def _as_response(res) -> Response:
    return Response(res.body or "", status=res.status, headers=res.headers)


def _page_view(page: AdminPage):
    return lambda: app_home(page)


def app_home(page: AdminPage = PAGES[0]):
    s = services()
    try:
        verified = s.verifier.app_home("GET", dict(request.headers), request.url, PATCH_ID_TOKEN_PATH)
    except ReloadWithNewToken as exc:
        return _as_response(exc.response)
    try:
        s.shop_tokens.ensure_installed(verified.shop_domain, verified.id_token, verified.invalid_token_response)
    except TokenExchangeFailed as exc:
        return _as_response(exc.response)
    lang, t = texts(request.args.get("locale"))
    boot = {"lang": lang, "t": t, "id_token": request.args.get("id_token", "")}
    html = render_template(f"admin/{page.template}.html", api_key=s.config.shopify_api_key,
                           shop=verified.shop_domain, lang=lang, t=t, boot=boot, page=page, pages=PAGES,
                           conversion_statuses=CONVERSION_STATUSES, import_t=import_text.texts(lang))
    return Response(html, headers=verified.headers)


for _page in PAGES:
    bp.add_url_rule(_page.path, f"page_{_page.template}", _page_view(_page), methods=["GET"])


@bp.get(PATCH_ID_TOKEN_PATH)
def patch_id_token():
    result = services().verifier.patch_id_token_page("GET", dict(request.headers), request.url)
    return _as_response(result.response)
