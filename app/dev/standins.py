"""Run the Smaregi and Shopify Admin emulators (one process, two ports), seeded with demo data."""
from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

from gunicorn.app.base import BaseApplication

from ..config import load_config
from ..logs import configure_logging
from .persist import StateFile, save_after_changes
from .seed import seed
from .serving import serve_in_thread
from .shopify_emulator import ShopifyEmulator
from .smaregi_emulator import SmaregiEmulator


def build(config, reads_per_s: int | None = None, writes_per_s: int | None = None):
    smaregi = SmaregiEmulator(clients={config.smaregi_client_id: config.smaregi_client_secret},
                              contracts=[config.smaregi_contract_id],
                              reads_per_s=reads_per_s or config.smaregi_reads_per_s,
                              writes_per_s=writes_per_s or config.smaregi_writes_per_s)
    shopify = ShopifyEmulator(config.shopify_api_key, config.shopify_api_secret)
    return smaregi, shopify


def readable_state_pages(app) -> None:
    """The /_emulator/ pages a person opens from the banner: indented, with Japanese as Japanese."""

    @app.after_request
    def _pretty(response):
        from flask import request

        if request.path.startswith("/_emulator/") and response.mimetype == "application/json":
            body = json.loads(response.get_data())
            response.set_data(json.dumps(body, ensure_ascii=False, indent=2) + "\n")
            response.mimetype = "application/json"
            response.charset = "utf-8"
        return response


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smaregi-port", type=int, required=True)
    parser.add_argument("--shopify-port", type=int, required=True)
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--reads-per-s", type=int)
    parser.add_argument("--writes-per-s", type=int)
    parser.add_argument("--state-dir", type=Path, help="keep each stand-in's state here across restarts")
    parser.add_argument("--keep-alive", action="store_true",
                        help="serve with gunicorn, which keeps connections open as Smaregi and Shopify do "
                             "(Werkzeug closes every one): for the benchmarks")
    args = parser.parse_args()
    if args.keep_alive:
        _KeepAlive(args).run()
        return
    smaregi_app, shopify_app = _apps(args)
    with serve_in_thread(smaregi_app, args.smaregi_port), serve_in_thread(shopify_app, args.shopify_port):
        threading.Event().wait()  # until the dev runner or the benchmark stops this process


def _apps(args):
    config = load_config()
    configure_logging(config.log_level, development=config.is_development)
    smaregi, shopify = build(config, args.reads_per_s, args.writes_per_s)
    smaregi_app, shopify_app = smaregi.create_app(), shopify.create_app()
    for app in (smaregi_app, shopify_app):
        readable_state_pages(app)
    restored = False
    if args.state_dir:
        files = [StateFile(smaregi, args.state_dir / "smaregi.json"), StateFile(shopify, args.state_dir / "shopify.json")]
        restored = all([f.load() for f in files])
        for app, state in zip((smaregi_app, shopify_app), files, strict=True):
            save_after_changes(app, state)
    if not args.no_seed and not restored:
        seed(smaregi, shopify, config.smaregi_contract_id)
        if args.state_dir:
            for state in files:
                state.save()
    return smaregi_app, shopify_app


class _KeepAlive(BaseApplication):
    """Both stand-ins in one gunicorn worker (their state is that process's memory), each on its port."""

    def __init__(self, args):
        self.args = args
        super().__init__()

    def load_config(self) -> None:
        for key, value in {"bind": [f"127.0.0.1:{self.args.smaregi_port}", f"127.0.0.1:{self.args.shopify_port}"],
                           "workers": 1, "worker_class": "gthread", "threads": 64, "keepalive": 60,
                           "loglevel": "warning"}.items():
            self.cfg.set(key, value)

    def load(self):
        smaregi_app, shopify_app = _apps(self.args)  # in the worker, so the stand-ins' threads live there
        by_port = {str(self.args.smaregi_port): smaregi_app, str(self.args.shopify_port): shopify_app}
        return lambda environ, start_response: by_port[environ["SERVER_PORT"]](environ, start_response)


if __name__ == "__main__":
    main()
