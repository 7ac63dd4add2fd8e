"""`python -m app.cli …` (also installed as `pointbridge`): migrations, the worker, sync operations."""
from __future__ import annotations

import click

from .startup import check_startup


def _config():
    return check_startup()


@click.group()
def main() -> None:
    """Pointbridge operations."""


@main.group()
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (the Procfile release phase runs this)."""
    from . import migrate

    migrate.upgrade(_config().database_url, revision)


@db.command("downgrade")
@click.option("--revision", default="-1", show_default=True)
def db_downgrade(revision: str) -> None:
    """Revert migrations."""
    from . import migrate

    migrate.downgrade(_config().database_url, revision)


def _services():
    from .logs import configure_logging
    from .services import Services

    config = _config()
    configure_logging(config.log_level, development=config.is_development)
    return Services.build(config)


@main.command()
def worker() -> None:
    """Run the sync worker (Procfile `worker`): member syncs and periodic jobs."""
    from .sync.worker import run_worker

    run_worker(_services())


@main.group()
def sync() -> None:
    """Member sync operations."""


def _shop_id(s, shop: str | None) -> int | None:
    if shop is None:
        return None
    from .shopify.transport import shop_domain
    from .sync.operations import shop_id_for

    shop_id = shop_id_for(s.db, shop_domain(shop))
    if shop_id is None:
        raise click.ClickException(f"unknown shop {shop}")
    return shop_id


@sync.command("status")
@click.option("--shop", help="example.myshopify.com (default: all shops)")
def sync_status(shop: str | None) -> None:
    """Count member links by state."""
    from .sync.operations import status_counts

    s = _services()
    for state, count in status_counts(s.db, _shop_id(s, shop)).items():
        click.echo(f"{state:10} {count}")


@sync.command("failures")
@click.option("--shop")
@click.option("--limit", default=50, show_default=True)
def sync_failures(shop: str | None, limit: int) -> None:
    """List failed and conflicting links with their reasons."""
    from .sync.operations import problems

    s = _services()
    for p in problems(s.db, _shop_id(s, shop), limit):
        click.echo(f"#{p.link_id} {p.shop_domain} customer {p.shopify_customer_id} {p.state} "
                   f"(attempts {p.attempts}, {p.updated_at:%Y-%m-%d %H:%M}Z): {p.last_error}")


@sync.command("retry")
@click.argument("link_ids", nargs=-1, type=int)
@click.option("--all", "retry_all", is_flag=True, help="retry every failed link")
@click.option("--shop")
def sync_retry(link_ids: tuple[int, ...], retry_all: bool, shop: str | None) -> None:
    """Retry failed links (by id, or --all)."""
    from .sync.operations import retry_failed

    if not link_ids and not retry_all:
        raise click.UsageError("give link ids or --all")
    s = _services()
    count = retry_failed(s.db, shop_id=_shop_id(s, shop), link_ids=list(link_ids) if link_ids else None)
    click.echo(f"{count} link(s) queued again")


@sync.command("resync")
@click.argument("customer_id", type=int)
@click.option("--shop", required=True)
def sync_resync(customer_id: int, shop: str) -> None:
    """Write one customer to Smaregi again."""
    from .sync.operations import resync

    s = _services()
    if not resync(s.db, _shop_id(s, shop), customer_id):
        raise click.ClickException("no recorded customer with that id in that shop")
    click.echo("queued")


@main.group("import")
def import_group() -> None:
    """Import of a shop's existing Shopify customers (the worker runs it)."""


def _import_shop_id(s, shop: str) -> int:
    """The shop's id; a shop we have not seen yet is recorded, so its import can fail with a reason."""
    from .db import insert_ignoring_conflict
    from .models import Shop, utcnow
    from .shopify.transport import shop_domain
    from .sync.operations import shop_id_for

    domain = shop_domain(shop)
    with s.db.transaction() as session:
        insert_ignoring_conflict(session, Shop, {"domain": domain, "created_at": utcnow(), "updated_at": utcnow()},
                                 ["domain"])
    return shop_id_for(s.db, domain)


@import_group.command("customers")
@click.option("--shop", required=True, help="example.myshopify.com")
def import_customers(shop: str) -> None:
    """Queue an import of every customer and return at once (a queued or running one is kept)."""
    from .sync import customer_import

    s = _services()
    current, new = customer_import.start(s.db, _import_shop_id(s, shop))
    click.echo(f"import {current.id} {'queued' if new else 'already ' + current.state}")


@import_group.command("cancel")
@click.option("--shop", required=True)
def import_cancel(shop: str) -> None:
    """Stop the shop's queued or running import."""
    from .sync import customer_import

    s = _services()
    click.echo("cancelled" if customer_import.cancel(s.db, _import_shop_id(s, shop)) else "no import to cancel")


@import_group.command("status")
@click.option("--shop", required=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object: state and counts")
def import_status(shop: str, as_json: bool) -> None:
    """The shop's latest import."""
    import json

    from .shopify.transport import shop_domain
    from .sync import customer_import
    from .sync.operations import shop_id_for

    s = _services()
    shop_id = shop_id_for(s.db, shop_domain(shop))
    current = customer_import.status(s.db, shop_id) if shop_id is not None else customer_import.ImportStatus(
        None, customer_import.ImportState.NONE.value)
    if as_json:
        click.echo(json.dumps(current.contract_json()))
        return
    for key, value in current.admin_json().items():
        if value is not None:
            click.echo(f"{key:12} {value}")


if __name__ == "__main__":
    main()
