"""A shop with existing customers in the Shopify stand-in and store members in the Smaregi stand-in,
the app served on a real port (Smaregi's bulk callbacks reach it there), and helpers to run the
worker until an import ends."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app import create_app
from app.dev.serving import serve_in_thread
from app.dev.signing import app_home_id_token
from app.models import MemberLink, Shop
from app.sync import customer_import, directory
from app.sync.worker import Worker

from .conftest import CONTRACT, SHOP

FINAL = {"done", "failed", "cancelled"}
T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class World:
    services: object
    smaregi: object
    shopify: object
    app_url: str
    client: object

    @property
    def shop_id(self) -> int:
        with self.services.db.transaction() as s:
            return s.scalar(select(Shop.id).where(Shop.domain == SHOP))

    def install(self) -> None:
        """The merchant opened App Home once: the shop has its offline token."""
        token = app_home_id_token(self.services.config.shopify_api_key, self.services.config.shopify_api_secret,
                                  SHOP)
        assert self.client.get(f"/?shop={SHOP}&host=x&id_token={token}").status_code == 200

    def directory_ready(self) -> None:
        assert directory.import_pages(self.services.db, self.services.smaregi.contract(CONTRACT))

    def customer(self, customer_id: int, *, first: str = "太郎", last: str = "山田", email: str | None = None,
                 verified: bool = True, phone: str | None = None, address: dict | None = None,
                 minutes: int = 0) -> None:
        self.shopify.add_customer(SHOP, customer_id, email=email, verifiedEmail=verified, firstName=first,
                                  lastName=last, phone=phone, defaultAddress=address,
                                  updatedAt=(T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"))

    def status(self):
        return customer_import.status(self.services.db, self.shop_id)

    def run(self, worker: Worker | None = None, timeout_s: float = 120, until=None):
        """Run the worker's loop (live syncs, then import steps) until the import ends or `until()`."""
        worker = worker or Worker(self.services, "test-worker")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if worker.drain() == 0 and not worker.imports.step():
                if self.status().state in FINAL:
                    return self.status()
                time.sleep(0.05)
            if until is not None and until():
                return self.status()
        raise AssertionError(f"import did not finish: {self.status()}")

    def links(self) -> dict[int, MemberLink]:
        with self.services.db.transaction() as s:
            return {link.shopify_customer_id: link for link in s.scalars(select(MemberLink))}

    def members(self) -> list[dict]:
        return list(self.smaregi.contracts[CONTRACT].customers.values())


def make_world(make_services, db_url, smaregi_em, shopify_em):
    """Yields a World whose app is served (for callbacks) on SHOPIFY_APP_URL."""
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    services = make_services(db_url, smaregi_url=smaregi_em[1], shopify_url=shopify_em[1], SHOPIFY_APP_URL=app_url)
    app = create_app(services=services)
    with serve_in_thread(app, port=port):
        yield World(services, smaregi_em[0], shopify_em[0], app_url, app.test_client())
