"""Structured logs. Callers pass ids as `extra` fields; personal data never goes in a log.

    log.info("member.created", extra={"shop_id": 3, "link_id": 42, "smaregi_customer_id": "123"})

Production writes one JSON object a line (for the log host); development writes the same event as
one short human line (`12:03:04 info  sync.worker  member.created shop_id=3 link_id=42`).

Callers slip, and libraries do not know our rules (a database error quotes the row it refused, an
HTTP error the URL it called), so every record passes `PersonalDataFilter` on its way out: e-mail
addresses, phone numbers and tokens are replaced in the message, its arguments, the extra fields
and the exception's text and traceback.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Belt and braces: even if a caller slips, these keys never reach the output.
_NEVER_LOGGED = {"email", "phone", "first_name", "last_name", "name", "address", "token", "access_token",
                 "refresh_token", "client_secret", "password"}

_SCRUBS = [
    # Shopify tokens (offline/online access, app secret, refresh …) and JWTs (session tokens, Smaregi's).
    (re.compile(r"\bshp(?:at|ss|ca|pa|ua|rt)_[A-Za-z0-9]+"), "[token]"),
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), "[token]"),
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[^\s\"',;]+"), r"\1 [token]"),
    (re.compile(r"(?i)\b(access_token|refresh_token|client_secret|id_token|password)([\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+"),
     r"\1\2[token]"),
    # Names and addresses have no shape, but inside a JSON copy of a customer they have a key.
    (re.compile(r"(?i)([\"'](?:first_name|last_name|firstName|lastName|name|address\d?|city|province|zip|postCode)[\"']"
                r"\s*:\s*)[\"'][^\"']*[\"']"), r'\1"[redacted]"'),
    # E-mail addresses, full-width ones included.
    (re.compile(r"[^\s@＠<>\"'(),;:\[\]{}]+[@＠][^\s@＠<>\"'(),;:\[\]{}]+[.．][^\s@＠<>\"'(),;:\[\]{}]+"), "[email]"),
    # Phone numbers: +81 90-1111-2222, 090-1111-2222, 03 (1234) 5678, 09011112222, +819011112222.
    # Ids (13-digit customer ids) do not start with 0 or +, dates have a 2-digit last group.
    (re.compile(r"(?<![\w.+-])(?:\+\d{1,3}[\s-]?)?\(?\d{1,4}\)?[\s-]\(?\d{1,4}\)?[\s-]\d{3,4}(?![\w-])"), "[phone]"),
    (re.compile(r"(?<![\w.+-])(?:\+\d{10,14}|0\d{9,10})(?!\w)"), "[phone]"),
]


def scrub(text: str) -> str:
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


class PersonalDataFilter(logging.Filter):
    """Attached to every handler we install (handler filters also see records from child loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a caller's bad format string: keep what we can
            message = str(record.msg)
        record.msg, record.args = scrub(message), ()
        if record.exc_info:
            text = record.exc_text or "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text, record.exc_info = scrub(text), None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, scrub(value))
        return True


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
        elif record.exc_text:  # already formatted (and scrubbed) by PersonalDataFilter
            entry["error"] = record.exc_text
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
    handler.addFilter(PersonalDataFilter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (request URLs carry contract ids only, but their volume drowns ours).
    for noisy in ("urllib3", "httpx", "httpcore", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # gunicorn's own loggers do not propagate to the root: they get the same filter.
    for name in ("gunicorn.error", "gunicorn.access"):
        for existing in logging.getLogger(name).handlers:
            existing.addFilter(PersonalDataFilter())
