"""gunicorn settings (`gunicorn -c python:app.gunicorn_conf`).

Configuration is validated in the master before any worker boots: a bad setting prints one line
naming the variable and stops gunicorn, instead of every worker failing and being respawned.
"""
import os
import sys

from app.config import ConfigError, load_config

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Balance and conversion requests mostly wait on Smaregi and Shopify: many threads, few processes.
threads = int(os.environ.get("WEB_THREADS", "32"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs structured lines itself; access logs would carry query strings


def on_starting(server):
    try:
        load_config()
    except ConfigError as exc:
        print(f"pointbridge: configuration error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
