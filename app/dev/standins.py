"""Run the Smaregi and Shopify Admin emulators (one process, two ports), seeded with demo data."""
from __future__ import annotations

import argparse
import threading

from ..config import load_config
from ..logs import configure_logging
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smaregi-port", type=int, required=True)
    parser.add_argument("--shopify-port", type=int, required=True)
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--reads-per-s", type=int)
    parser.add_argument("--writes-per-s", type=int)
    args = parser.parse_args()
    config = load_config()
    configure_logging(config.log_level)
    smaregi, shopify = build(config, args.reads_per_s, args.writes_per_s)
    if not args.no_seed:
        seed(smaregi, shopify, config.smaregi_contract_id)
    with serve_in_thread(smaregi.create_app(), args.smaregi_port), \
            serve_in_thread(shopify.create_app(), args.shopify_port):
        threading.Event().wait()  # until the dev runner or the benchmark stops this process


if __name__ == "__main__":
    main()
