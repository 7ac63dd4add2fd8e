"""Pointbridge: Shopify customers and Smaregi members, one point balance."""
from __future__ import annotations

from flask import Flask

from .config import Config, load_config
from .logs import configure_logging
from .services import Services


def create_app(config: Config | None = None, services: Services | None = None) -> Flask:
    """Application factory. Config errors raise ConfigError (one line naming the variable)."""
    config = config or (services.config if services else load_config())
    configure_logging(config.log_level, development=config.is_development)
    app = Flask(__name__, instance_relative_config=False)
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024  # webhooks and proxy bodies are small
    app.extensions["pointbridge"] = services or Services.build(config)

    from .web import register_blueprints, report_timing

    report_timing(app)
    register_blueprints(app)
    return app
