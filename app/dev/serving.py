"""Serve a WSGI app on 127.0.0.1 in a background thread (stand-ins, tests, benchmarks)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import WSGIRequestHandler, make_server


class KeepAliveHandler(WSGIRequestHandler):
    # Smaregi and Shopify keep connections alive; Werkzeug's default (HTTP/1.0) closes each one,
    # which would make every call pay a new connection here and nowhere else.
    protocol_version = "HTTP/1.1"


@contextmanager
def serve_in_thread(app, port: int = 0) -> Iterator[str]:
    """Yields the base URL; stops the server on exit. Port 0 picks a free one."""
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=KeepAliveHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
