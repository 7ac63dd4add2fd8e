"""`python3 dev.py run`: the whole app on one machine, on SQLite, against local stand-ins.

Starts the Smaregi and Shopify Admin emulators, applies migrations, runs the web process (gunicorn,
as in production), the worker and the dev storefront, installs the dev shop through the real
token-exchange path, and prints the URLs to open.

- Everything it starts is one process group it owns: Ctrl-C or SIGTERM stops all of it within
  seconds, with one line.
- Before anything starts it takes a lock beside the database (a second copy stops at once, before
  touching anything) and checks every port (the message names the variable that moves it).
- The stand-ins keep their state beside the SQLite file (`instance/standins/*.json`), so a restart
  finds Shopify's codes and Smaregi's balances as the app's database remembers them. If either
  side is missing, both start fresh and the demo data is seeded again.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .. import migrate
from ..config import DEV_PORT_VARIABLES, ROOT, ConfigError, load_config, load_dev_ports
from ..startup import check_startup
from .processes import ProcessGroup, Stop, stop_on_signals
from .seed import DEV_SHOP, customer_payloads, order_payloads
from .signing import app_home_id_token, webhook_hmac


class RunError(Exception):
    """Something stops the dev run before it serves; str() is the one line to show."""


def _say(line: str) -> None:
    print(f"dev: {line}", file=sys.stderr, flush=True)


def _env(ports: dict[str, int]) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("POINTBRIDGE_ENV", "development")
    env["PORT"] = str(ports["web"])
    env.setdefault("SMAREGI_ID_BASE", f"http://127.0.0.1:{ports['smaregi']}")
    env.setdefault("SMAREGI_API_BASE", f"http://127.0.0.1:{ports['smaregi']}")
    env.setdefault("SHOPIFY_ADMIN_API_BASE", f"http://127.0.0.1:{ports['shopify']}/{{shop}}")
    env.setdefault("SMAREGI_WEBHOOK_SECRET", "dev-smaregi-webhook-secret")  # the stand-in sends it back
    for name, variable in DEV_PORT_VARIABLES.items():
        env[variable] = str(ports[name])
    return env


def _wait_http(url: str, group: ProcessGroup, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if group.exited():
            raise RunError(f"{', '.join(group.exited())} exited while starting (its output is above)")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise RunError(f"{url} did not come up within {seconds:.0f} s")


def check_ports(ports: dict[str, int]) -> None:
    """Every port free, or one line naming the variable that moves the first one taken."""
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
                variable = DEV_PORT_VARIABLES[name]
                raise RunError(f"port {port} ({name}) {why}; stop what holds it, or choose another with "
                               f"{variable}={port + 1000} python3 dev.py run") from None


def _sqlite_path(database_url: str) -> Path | None:
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        return Path(database_url[len("sqlite:///"):])
    return None


class RunLock:
    """One `dev.py run` per database: the second stops before it writes anything."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")  # noqa: SIM115 (held open: the lock lives as long as the file)
        try:
            import fcntl
        except ImportError:  # Windows: the port check below still stops a second copy
            return
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.seek(0)
            pid = self.handle.read().strip() or "?"
            self.handle.close()
            raise RunError(f"another `dev.py run` (pid {pid}) is already using {self.path.parent}; "
                           "stop it first (Ctrl-C in its terminal)") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()


def state_dir_for(database_url: str, root: Path) -> Path:
    sqlite = _sqlite_path(database_url)
    return (sqlite.parent if sqlite else root / "instance") / "standins"


def _start_fresh(database: Path | None, state_dir: Path) -> bool:
    """True when the database and the stand-ins' state do not both exist: remove what is left of
    either, so the app never remembers codes or tokens the stand-ins have forgotten (or the reverse)."""
    states = [state_dir / "smaregi.json", state_dir / "shopify.json"]
    have_db = database is None or database.exists()
    if have_db and all(f.exists() for f in states):
        return False
    if database is not None and database.exists():
        _say(f"the stand-ins' state is missing; starting {database.name} fresh as well")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    for f in states:
        f.unlink(missing_ok=True)
    return True


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


def _wait_for_seed_syncs(config, seconds: float = 20) -> None:
    """Let the worker link the seeded customers before the banner, so its lines do not bury it."""
    from ..db import Database
    from ..sync.operations import status_counts

    db = Database(config.database_url, max_connections=2)
    try:
        deadline = time.monotonic() + seconds
        while status_counts(db).get("pending", 0) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        db.dispose()


def _banner(env: dict[str, str], config, web: str) -> str:
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
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _run_stand_ins() -> int:
    ports = load_dev_ports()
    env = _env(ports)
    os.environ.update(env)
    config = load_config()
    web = f"http://127.0.0.1:{ports['web']}"  # the runner talks to its own processes on loopback
    state_dir = state_dir_for(config.database_url, ROOT)
    lock_dir = _sqlite_path(config.database_url)
    lock = RunLock((lock_dir.parent if lock_dir else state_dir.parent) / "dev-run.lock")
    lock.acquire()  # held (the file stays open) until this process ends
    check_ports(ports)
    fresh = _start_fresh(_sqlite_path(config.database_url), state_dir)
    check_startup()  # the database opens (one line if not)
    migrate.upgrade(config.database_url)
    py = sys.executable
    group = ProcessGroup(env)
    try:
        group.start("stand-ins", [py, "-m", "app.dev.standins", "--smaregi-port", str(ports["smaregi"]),
                                  "--shopify-port", str(ports["shopify"]), "--state-dir", str(state_dir)])
        _wait_http(f"http://127.0.0.1:{ports['shopify']}/_emulator/counts", group)
        group.start("web", [py, "-m", "gunicorn", "--bind", f"127.0.0.1:{ports['web']}", "-c",
                            "python:app.gunicorn_conf", "--workers", "1", "--graceful-timeout", "2",
                            "--log-level", "warning", "app:create_app()"])
        group.start("worker", [py, "-m", "app.cli", "worker"])
        group.start("storefront", [py, "-m", "app.dev.storefront"])
        _wait_http(f"{web}/healthz", group)
        _wait_http(f"http://127.0.0.1:{ports['storefront']}/assets/points.js", group)
        # Install the dev shop the way Shopify admin does: a first App Home load with an id token.
        urllib.request.urlopen(f"{web}/?shop={DEV_SHOP}&host=ZGV2&id_token={id_token(config)}", timeout=10)
        _point_smaregi_webhooks_here(web, env, config)  # the stand-in's target is not kept across restarts
        if fresh:
            _send_customer_webhooks(web, config)
            _set_demo_rules(web, config)
            _wait_for_seed_syncs(config)
            _send_order_webhooks(web, config, 0, 2)  # two paid orders; their refund and cancellation follow
            later = threading.Timer(ORDER_CHANGES_AFTER_S, _send_order_webhooks, (web, config, 2, 4))
            later.daemon = True
            later.start()
            _start_import(web, config)
        group.say(_banner(env, config, web), stream=sys.stdout)
        while not group.exited():
            time.sleep(0.2)
        dead = group.exited()
        _say(f"{', '.join(dead)} exited (status {group.procs[dead[0]].returncode}); stopped the rest")
        return 1
    except (KeyboardInterrupt, Stop):
        group.stop()
        _say("stopped")
        return 0
    finally:
        group.stop()


def main(argv: list[str] | None = None) -> int:
    stand_ins = "--no-stand-ins" not in (argv if argv is not None else sys.argv[1:])
    stop_on_signals()
    try:
        return _run_stand_ins() if stand_ins else _serve()
    except (ConfigError, RunError) as exc:
        print(f"pointbridge: configuration error: {exc}" if isinstance(exc, ConfigError) else f"dev: {exc}",
              file=sys.stderr, flush=True)
        return 2 if isinstance(exc, ConfigError) else 1
    except (KeyboardInterrupt, Stop):  # before any child was started
        _say("stopped")
        return 0


def _serve() -> int:
    """For `shopify app dev`: the web process and the worker against real Shopify and Smaregi."""
    config = check_startup()
    migrate.upgrade(config.database_url)
    py = sys.executable
    group = ProcessGroup(dict(os.environ))
    try:
        group.start("web", [py, "-m", "gunicorn", "--bind", f"0.0.0.0:{config.port}", "-c",
                            "python:app.gunicorn_conf", "--graceful-timeout", "2", "app:create_app()"])
        group.start("worker", [py, "-m", "app.cli", "worker"])
        while not group.exited():
            time.sleep(0.2)
        _say(f"{', '.join(group.exited())} exited; stopped the rest")
        return 1
    except (KeyboardInterrupt, Stop):
        group.stop()
        _say("stopped")
        return 0
    finally:
        group.stop()


if __name__ == "__main__":
    sys.exit(main())
