"""Keep a stand-in's state in a JSON file, so a restarted `dev.py run` finds the platforms as it left them.

The real Shopify and Smaregi do not forget discount codes, members or tokens when our app restarts;
stand-ins that did would make the app's SQLite state (codes issued, balances spent, tokens held)
disagree with "the platform" and show the shopper errors no real platform causes.

The encoding is generic (dataclasses, sets, tuples and non-string dict keys are tagged), so fields
added to an emulator later are kept without touching this module. What is transient by nature —
locks, clocks, injected faults, rate-limit windows, statistics — is left out.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRANSIENT = {"lock", "clock", "faults", "windows", "stats", "counts", "token_latency_s",
             # from the configuration of this start, not state
             "clients", "api_key", "api_secret", "reads_per_s", "writes_per_s", "token_ttl_s"}


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"$dataclass": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {"$items": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"$set": [_encode(v) for v in sorted(value, key=repr)]}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(type(value).__name__)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$dataclass" in value:
        module, _, name = value["$dataclass"].partition(":")
        cls = getattr(sys.modules[module], name)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _decode(v) for k, v in value["fields"].items() if k in known})
    if "$items" in value:
        return {_decode(k): _decode(v) for k, v in value["$items"]}
    if "$set" in value:
        return {_decode(v) for v in value["$set"]}
    if "$tuple" in value:
        return tuple(_decode(v) for v in value["$tuple"])
    return {k: _decode(v) for k, v in value.items()}


class StateFile:
    """One emulator's durable attributes in `path`; `save()` after each change, `load()` at start."""

    def __init__(self, emulator: Any, path: Path):
        self.emulator = emulator
        self.path = path
        self._write_lock = threading.Lock()

    def _attributes(self) -> dict[str, Any]:
        out = {}
        for name, value in vars(self.emulator).items():
            if name in TRANSIENT or name.startswith("_") or callable(value):
                continue
            try:
                out[name] = _encode(value)
            except TypeError:
                continue  # not data (a thread, a queue): nothing a restart needs
        return out

    def save(self) -> None:
        with self.emulator.lock:
            text = json.dumps(self._attributes(), ensure_ascii=False, indent=1)
        with self._write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)

    def load(self) -> bool:
        """True when a saved state was restored; False when there is none (seed a fresh one)."""
        if not self.path.exists():
            return False
        saved = json.loads(self.path.read_text(encoding="utf-8"))
        with self.emulator.lock:
            for name, value in saved.items():
                if hasattr(self.emulator, name):
                    setattr(self.emulator, name, _decode(value))
        return True


def save_after_changes(app, state: StateFile) -> None:
    """Save after every request that may change state (anything but GET/HEAD/OPTIONS)."""

    @app.after_request
    def _persist(response):
        from flask import request

        if request.method not in {"GET", "HEAD", "OPTIONS"}:
            state.save()
        return response
