"""Every admin page in Japanese, with something on each (a failed sync, a held customer, a conversion,
a point movement to settle, an audit finding, an import under way, the connection test): no English word is left on screen,
apart from names and codes that are the same in every language."""
from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlalchemy import update

from app import create_app
from app.dev.signing import app_home_id_token
from app.models import PointMovement
from app.points import audit, movements
from app.points.movements import MovementKind, MovementReason
from app.sync import customer_import, directory, reasons
from app.sync.worker import Worker
from app.webhooks.dispatch import Delivery, record

from .conftest import CONTRACT, SHOP, serving
from .helpers import customer, proxy_url
from .test_email_linking import store_hanako, unverified
from .test_member_sync import drain, queue_customer

TARO, ICHIRO = 8840734670934, 8840734670937

# Brand and platform names, field and scope names the merchant types or reads in Smaregi, units.
ALLOWED = {"pointbridge", "shopify", "smaregi", "pos", "webhook", "ms", "pt",
           "birthdate", "pos.customers", "smaregi_contract_id", "smaregi_client_id", "smaregi_client_secret",
           "smaregi_sync_enabled", "false", "jpy", "asia", "tokyo", "id", "ja", "en", "gold", "member"}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.]*[A-Za-z0-9]|[A-Za-z]")


def english_words(text: str) -> set[str]:
    """Words in Latin letters that are neither allowed nor codes (upper case, or with digits: ids, contracts)."""
    text = re.sub(r"\S+\.myshopify\.com", "", text)
    return {w for w in WORD.findall(text) if w.lower() not in ALLOWED and not re.fullmatch(r"[A-Z0-9_-]+", w)
            and not re.search(r"\d", w)}


@pytest.fixture
def busy_shop(services, smaregi_em, shopify_em, browser):
    em = smaregi_em[0]
    ichiro = em.add_member(CONTRACT, customerCode=str(ICHIRO), lastName="鈴木", firstName="一郎", points=1000)
    store_hanako(em)
    em.add_member(CONTRACT, customerCode="S-000102", lastName="佐藤", firstName="花子",
                  mailAddress="hanako@example.com")  # two store members with her (unverified) e-mail: held
    directory.import_pages(services.db, services.smaregi.contract(CONTRACT))
    for cid, first in ((TARO, "太郎"), (ICHIRO, "一郎")):
        shopify_em[0].add_customer(SHOP, cid, firstName=first)

    def token():
        return app_home_id_token(services.config.shopify_api_key, services.config.shopify_api_secret, SHOP, ttl_s=300)

    app = create_app(services=services)
    assert app.test_client().get(f"/?shop={SHOP}&host=x&id_token={token()}").status_code == 200  # installed
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w1", None, None, customer(ICHIRO)))
    drain(services)
    converted = app.test_client().post(proxy_url(services.config.shopify_api_secret, "conversions", ICHIRO),
                                       data=json.dumps({"points": 500, "idempotency_key": str(uuid.uuid4())}),
                                       content_type="application/json")
    assert converted.status_code == 201, converted.json
    em.contracts[CONTRACT].required_columns["birthDate"] = "1"  # Taro's sync fails on it
    record(services.db, services.config, Delivery(SHOP, "customers/create", "w2", None, None, customer(TARO)))
    queue_customer(services, unverified(email="hanako@example.com"))
    drain(services)
    em.edit_member(CONTRACT, ichiro["customerId"], customerCode="CARD-0042")  # changed at the register
    audit.request_audit(services, services_shop_id(services))
    audit.run_due(services)
    customer_import.start(services.db, services_shop_id(services))
    Worker(services, "w").drain()
    with services.db.transaction() as s:  # a purchase's points that only the merchant can settle
        grant = movements.plan(s, shop_id=services_shop_id(services), customer_id=ICHIRO, kind=MovementKind.GRANT,
                               reason=MovementReason.ONLINE_PURCHASE, points=40)
        s.execute(update(PointMovement).where(PointMovement.id == grant.id).values(
            state="needs_review", next_attempt_at=None, error=reasons.text("movement_ambiguous")))

    with serving(app) as url:
        browser.before_scripts(f"window.shopify = {{ idToken: () => Promise.resolve({token()!r}) }};")

        def page(path: str):
            browser.open(f"{url}{path}?shop={SHOP}&host=x&locale=ja&id_token={token()}")
            browser.wait_for("document.body.dataset.ready === '1'", timeout_s=20)
            return browser.eval("document.body.innerText")

        yield page, browser


def services_shop_id(services) -> int:
    from sqlalchemy import select

    from app.models import Shop

    with services.db.transaction() as s:
        return s.scalar(select(Shop.id).where(Shop.domain == SHOP))


def test_every_admin_page_speaks_japanese_only(busy_shop):
    page, browser = busy_shop
    seen = {}
    for path in ("/", "/connection", "/rules", "/members", "/coupons", "/data-requests"):
        seen[path] = page(path)
        if path == "/connection":
            browser.click("[data-test-connection]")
            browser.wait_for("document.querySelectorAll('[data-checks] li').length === 3")
            seen[path] = browser.eval("document.body.innerText")
        if path == "/members":  # the import's own progress and held list come a moment later
            browser.wait_for("document.querySelector('[data-import-state]').textContent.length > 0")
            seen[path] = browser.eval("document.body.innerText")
        assert english_words(seen[path]) == set(), path
    # the walk saw what it was meant to: each kind of entry, in Japanese
    assert "スマレジが会員データを受け付けませんでした（birthDate）" in seen["/members"]
    assert "確認していない" in seen["/members"] and "S-000102 とつなぐ" in seen["/members"]
    assert "スマレジで会員コードが変更されています" in seen["/coupons"] and "完了" in seen["/coupons"]
    assert "この変更に当たる可能性のある取引がスマレジに 2 件あります。" in seen["/coupons"]
    assert "スマレジで Shopify にない項目が必須になっています" in seen["/connection"]


def test_the_allow_list_still_catches_english():
    assert english_words("Smaregi did not answer in time") == {"did", "not", "answer", "in", "time"}
    assert english_words("スマレジ S-000101 CARD-0042 p50 pointbridge-test.myshopify.com") == set()
