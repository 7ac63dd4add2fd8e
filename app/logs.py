"""Structured logs. Callers pass ids as `extra` fields; personal data never goes in a log.

    log.info("member.created", extra={"shop_id": 3, "link_id": 42, "smaregi_customer_id": "123"})

Production writes one JSON object a line (for the log host); development writes the same event as
one short human line (`12:03:04 info  sync.worker  member.created shop_id=3 link_id=42`).
"""
from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Belt and braces: even if a caller slips, these keys never reach the output.
_NEVER_LOGGED = {"email", "phone", "first_name", "last_name", "name", "address", "token", "access_token",
                 "refresh_token", "client_secret", "password"}


def _fields(record: logging.LogRecord) -> dict:
    return {key: value for key, value in record.__dict__.items()
            if key not in _STANDARD and key not in _NEVER_LOGGED and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """Development: the event and its ids on one short line; a traceback only for real errors."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        logger = record.name.removeprefix("app.")
        ids = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname.lower():7} {logger:16} {record.getMessage()}" + (f" {ids}" if ids else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", development: bool = False) -> None:
    formatter_class = HumanFormatter if development else JsonFormatter
    root = logging.getLogger()
    if any(type(h.formatter) is formatter_class for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_class())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (request URLs carry contract ids only, but their volume drowns ours).
    for noisy in ("urllib3", "httpx", "httpcore", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
