"""gunicorn settings (`gunicorn -c python:app.gunicorn_conf`).

Configuration (and the database) is checked in the master before any worker boots: a bad setting
prints one line naming the variable and stops gunicorn, instead of every worker failing and being
respawned.
"""
from app.startup import check_startup

_config = check_startup()
workers = _config.web_concurrency
# Balance and conversion requests mostly wait on Smaregi and Shopify: many threads, few processes.
threads = _config.web_threads
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs structured lines itself; access logs would carry query strings

