"""Webhooks out of the Smaregi stand-in, as Smaregi sends them (shared/reference/smaregi.md §7).

POST to the configured URL with `Smaregi-Event`, `Smaregi-Contract-Id`, `Smaregi-Event-Id` (uuid),
the merchant's custom secret header, and `{contractId, event, action, customerIds|transactionHeadIds}`
(ids only, as strings). Sent from a background thread after the change (Smaregi does not make the
API caller wait), once, with no retry. Duplicate delivery and reordering can be switched on.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 3.0  # Smaregi gives up after about 3 s [T]
IDS_FIELD = {"pos:customers": "customerIds", "pos:transactions": "transactionHeadIds"}


@dataclass
class WebhookTarget:
    url: str | None = None
    secret: str | None = None
    secret_header: str = "X-Pointbridge-Secret"
    duplicate: bool = False  # send every event twice (same event id)
    reorder: bool = False  # hold each event back until the next one has been sent
    sent: list[dict[str, Any]] = field(default_factory=list)  # what went out, for tests and the dev runner


class WebhookSender:
    def __init__(self) -> None:
        self.target = WebhookTarget()
        self._queue: queue.Queue[tuple[dict[str, str], bytes] | threading.Event] = queue.Queue()
        self._held: tuple[dict[str, str], bytes] | None = None
        self._lock = threading.Lock()
        self._http = requests.Session()
        self._thread = threading.Thread(target=self._run, name="smaregi-webhooks", daemon=True)
        self._thread.start()

    def configure(self, url: str | None, secret: str | None = None, *, secret_header: str = "X-Pointbridge-Secret",
                  duplicate: bool = False, reorder: bool = False) -> None:
        with self._lock:
            self.target = WebhookTarget(url or None, secret, secret_header, duplicate, reorder)

    def emit(self, contract_id: str, event: str, action: str, ids: list[str]) -> None:
        with self._lock:
            target = self.target
        if not target.url or not ids:
            return
        body = json.dumps({"contractId": contract_id, "event": event, "action": action,
                           IDS_FIELD[event]: [str(i) for i in ids]}).encode()
        headers = {"Content-Type": "application/json", "Smaregi-Event": event, "Smaregi-Contract-Id": contract_id,
                   "Smaregi-Event-Id": str(uuid.uuid4()), "User-Agent": "Smaregi-Platform-Api-Webhook/emulator"}
        if target.secret:
            headers[target.secret_header] = target.secret
        self._queue.put((headers, body))

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until everything emitted so far has been sent (tests)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout_s)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                if self._held is not None:
                    self._send(*self._held)
                    self._held = None
                item.set()
                continue
            with self._lock:
                target = self.target
            if target.reorder and self._held is None:
                self._held = item
                continue
            self._send(*item)
            if target.duplicate:
                self._send(*item)
            if self._held is not None:
                self._send(*self._held)
                self._held = None

    def _send(self, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            target = self.target
        if not target.url:
            return
        try:
            status = self._http.post(target.url, data=body, headers=headers, timeout=SEND_TIMEOUT_S).status_code
        except requests.RequestException as exc:
            status = None
            log.warning("emulator.webhook_failed", extra={"error": type(exc).__name__})
        with self._lock:
            target.sent.append({"event_id": headers["Smaregi-Event-Id"], "event": headers["Smaregi-Event"],
                                "body": json.loads(body), "status": status})
