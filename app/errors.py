"""The error vocabulary: every failure a caller is told about is one of these classes.

A class names its contract `code` and HTTP `status`; app/web/errors.py answers every subclass the
same way, so adding an error is one class here or beside its domain, nothing else. No Flask here.
"""
from __future__ import annotations

from collections.abc import Mapping


class AppError(Exception):
    code = "internal_error"
    status = 500
    message = "Something went wrong."

    def __init__(self, message: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.headers = dict(headers or {})  # e.g. App Bridge's retry header on an expired session
