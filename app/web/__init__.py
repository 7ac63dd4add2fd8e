"""Thin blueprints: verify, parse, call one domain function, shape the answer."""
from __future__ import annotations

from flask import Flask, Response, current_app, g

from .. import timing
from ..services import Services


def services() -> Services:
    return current_app.extensions["pointbridge"]


def register_blueprints(app: Flask) -> None:
    from . import (
        admin,
        app_home,
        bulk_callbacks,
        customer_account,
        errors,
        health,
        inbound,
        proxy,
        smaregi_connect,
        smaregi_webhooks,
        webhooks,
    )

    errors.register(app)
    inbound.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(customer_account.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(smaregi_connect.bp)
    app.register_blueprint(proxy.bp)
    app.register_blueprint(app_home.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(smaregi_webhooks.bp)
    app.register_blueprint(bulk_callbacks.bp)


def report_timing(app: Flask) -> None:
    """Every response says where its time went (`Server-Timing`: durations and counts, nothing else)."""

    @app.before_request
    def start() -> None:
        g.timing = timing.Timing()
        g.timing_token = timing.begin(g.timing)

    @app.after_request
    def report(resp: Response) -> Response:
        if "timing" in g:
            resp.headers["Server-Timing"] = g.timing.header()
        return resp

    @app.teardown_request
    def stop(_exc) -> None:
        if "timing_token" in g:
            timing.end(g.pop("timing_token"))
