"""Serve a WSGI app on 127.0.0.1 in a background thread (stand-ins, tests, benchmarks)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server

# Werkzeug closes every connection after its response, whatever the protocol version: a call to a
# stand-in served here pays a new connection, one to Smaregi or Shopify does not. The benchmarks
# therefore run the stand-ins with `python -m app.dev.standins --keep-alive` (gunicorn).


@contextmanager
def serve_in_thread(app, port: int = 0) -> Iterator[str]:
    """Yields the base URL; stops the server on exit. Port 0 picks a free one."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
