"""`python3 dev.py run`: the whole app on one machine, on SQLite, against local stand-ins.

Starts the Smaregi and Shopify Admin emulators (seeded), applies migrations, runs the web process
(gunicorn, as in production) and the worker, installs the dev shop through the real token-exchange
path, and prints the URLs to open. Ctrl-C stops everything.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from .. import migrate
from ..config import load_config
from .seed import DEV_SHOP, customer_payloads, order_payloads
from .signing import app_home_id_token, webhook_hmac

PORTS = {"web": 8000, "smaregi": 8101, "shopify": 8102, "storefront": 8103}


def _env() -> dict[str, str]:
    def port(name):
        return int(os.environ.get(f"POINTBRIDGE_{name.upper()}_PORT", PORTS[name]))
    env = dict(os.environ)
    env.setdefault("POINTBRIDGE_ENV", "development")
    env.setdefault("PORT", str(port("web")))
    env.setdefault("SMAREGI_ID_BASE", f"http://127.0.0.1:{port('smaregi')}")
    env.setdefault("SMAREGI_API_BASE", f"http://127.0.0.1:{port('smaregi')}")
    env.setdefault("SHOPIFY_ADMIN_API_BASE", f"http://127.0.0.1:{port('shopify')}/{{shop}}")
    env.setdefault("SMAREGI_WEBHOOK_SECRET", "dev-smaregi-webhook-secret")  # the stand-in sends it back
    env["POINTBRIDGE_STOREFRONT_PORT"] = str(port("storefront"))
    env["POINTBRIDGE_SMAREGI_PORT"] = str(port("smaregi"))
    env["POINTBRIDGE_SHOPIFY_PORT"] = str(port("shopify"))
    return env


def _wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"dev: {url} did not come up")


def id_token(config, minutes: int = 1) -> str:
    """An App Home id token signed with the dev secret, as Shopify admin would send."""
    return app_home_id_token(config.shopify_api_key, config.shopify_api_secret, DEV_SHOP, ttl_s=60 * minutes)


def _send_customer_webhooks(web: str, config) -> None:
    """Signed customers/create deliveries for the demo customers: the worker links or creates members."""
    for payload in customer_payloads():
        body = json.dumps(payload, ensure_ascii=False).encode()
        request = urllib.request.Request(f"{web}/webhooks", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Shopify-Topic": "customers/create",
            "X-Shopify-Shop-Domain": DEV_SHOP, "X-Shopify-Webhook-Id": f"dev-seed-{payload['id']}",
            "X-Shopify-Hmac-Sha256": webhook_hmac(body, config.shopify_api_secret)})
        urllib.request.urlopen(request, timeout=10)


ORDER_CHANGES_AFTER_S = 10  # the grants land first, so the refund and cancellation show as their own rows


def _send_order_webhooks(web: str, config, first: int, last: int) -> None:
    """A paid order, a partial refund and a cancellation: the worker grants and takes back points."""
    for number, (topic, payload) in list(enumerate(order_payloads()))[first:last]:
        body = json.dumps(payload).encode()
        request = urllib.request.Request(f"{web}/webhooks", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": DEV_SHOP,
            "X-Shopify-Webhook-Id": f"dev-order-{number}",
            "X-Shopify-Hmac-Sha256": webhook_hmac(body, config.shopify_api_secret)})
        urllib.request.urlopen(request, timeout=10)
def _point_smaregi_webhooks_here(web: str, env: dict[str, str], config) -> None:
    """As the merchant sets it in Smaregi's developer console: our URL and the secret header."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{env['POINTBRIDGE_SMAREGI_PORT']}/_emulator/webhooks", method="POST",
        data=json.dumps({"url": f"{web}/smaregi/webhooks", "secret": config.smaregi_webhook_secret}).encode(),
        headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10)


def _set_demo_rules(web: str, config) -> None:
    """Rank labels for the seeded ranks, saved through the admin API as the merchant would."""
    rules = {"smaregi_contract_id": "", "yen_per_point": 1, "points_unit": 100, "points_minimum": 100,
             "points_daily_limit": 10000, "coupon_valid_days": 30, "blank_name_placeholder": "-",
             "keep_store_member_codes": False, "sync_enabled": True,
             "rank_labels": {"gold": {"ja": "ゴールド会員", "en": "Gold Member"},
                             "silver": {"ja": "シルバー会員", "en": "Silver Member"},
                             "platinum": {"ja": "プラチナ会員", "en": "Platinum Member"}}}
    request = urllib.request.Request(f"{web}/admin/api/settings", data=json.dumps(rules).encode(), method="PUT",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {id_token(config)}"})
    urllib.request.urlopen(request, timeout=10)


def _start_import(web: str, config) -> None:
    """The merchant presses "Import customers": the seeded Shopify customers are imported."""
    request = urllib.request.Request(f"{web}/admin/api/import", data=b"", method="POST",
                                     headers={"Authorization": f"Bearer {id_token(config)}"})
    urllib.request.urlopen(request, timeout=10)


def main(argv: list[str] | None = None) -> int:
    stand_ins = "--no-stand-ins" not in (argv if argv is not None else sys.argv[1:])
    if not stand_ins:
        return _serve()
    env = _env()
    os.environ.update(env)
    config = load_config()
    migrate.upgrade(config.database_url)
    py = sys.executable
    web = f"http://127.0.0.1:{env['PORT']}"  # the runner talks to its own processes on loopback
    procs = {
        "stand-ins": subprocess.Popen([py, "-m", "app.dev.standins", "--smaregi-port", env["POINTBRIDGE_SMAREGI_PORT"],
                                       "--shopify-port", env["POINTBRIDGE_SHOPIFY_PORT"]], env=env),
    }
    _wait_http(f"http://127.0.0.1:{env['POINTBRIDGE_SHOPIFY_PORT']}/_emulator/counts")
    procs["web"] = subprocess.Popen([py, "-m", "gunicorn", "--bind", f"127.0.0.1:{env['PORT']}", "-c",
                                     "python:app.gunicorn_conf", "--workers", "1", "app:create_app()"], env=env)
    procs["worker"] = subprocess.Popen([py, "-m", "app.cli", "worker"], env=env)
    procs["storefront"] = subprocess.Popen([py, "-m", "app.dev.storefront"], env=env)
    _wait_http(f"{web}/healthz")
    # Install the dev shop the way Shopify admin does: a first App Home load with an id token.
    urllib.request.urlopen(f"{web}/?shop={DEV_SHOP}&host=ZGV2&id_token={id_token(config)}", timeout=10)
    _send_customer_webhooks(web, config)
    _point_smaregi_webhooks_here(web, env, config)
    _set_demo_rules(web, config)
    _send_order_webhooks(web, config, 0, 2)  # two paid orders; their refund and cancellation follow
    later = threading.Timer(ORDER_CHANGES_AFTER_S, _send_order_webhooks, (web, config, 2, 4))
    later.daemon = True
    later.start()
    _start_import(web, config)
    lines = [
        "",
        "Pointbridge is running (SQLite, local stand-ins). Open:",
        f"  Dev storefront      http://127.0.0.1:{env['POINTBRIDGE_STOREFRONT_PORT']}/?customer=8840734670934&locale=ja",
        f"  App Home (admin)    {web}/?shop={DEV_SHOP}&host=ZGV2&id_token={id_token(config, minutes=60)}",
        f"  Health              {web}/healthz",
        f"  Smaregi emulator    http://127.0.0.1:{env['POINTBRIDGE_SMAREGI_PORT']}/_emulator/{config.smaregi_contract_id}/members",
        f"    a register edit:  curl -X PATCH -H 'Content-Type: application/json' -d '{{\"rank\": \"platinum\"}}' "
        f"http://127.0.0.1:{env['POINTBRIDGE_SMAREGI_PORT']}/_emulator/{config.smaregi_contract_id}/members/1",
        f"  Shopify emulator    http://127.0.0.1:{env['POINTBRIDGE_SHOPIFY_PORT']}/_emulator/{DEV_SHOP}/state",
    ]
    print("\n".join([*lines, "Ctrl-C stops everything.", ""]), flush=True)
    try:
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
        dead = [name for name, p in procs.items() if p.poll() is not None]
        print(f"dev: {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def _serve() -> int:
    """For `shopify app dev`: the web process and the worker against real Shopify and Smaregi."""
    config = load_config()
    migrate.upgrade(config.database_url)
    py = sys.executable
    procs = [subprocess.Popen([py, "-m", "gunicorn", "--bind", f"0.0.0.0:{config.port}", "-c",
                               "python:app.gunicorn_conf", "app:create_app()"]),
             subprocess.Popen([py, "-m", "app.cli", "worker"])]
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(10)


if __name__ == "__main__":
    sys.exit(main())
