"""Smaregi failures as types. problem+json bodies become these at the edge of the client."""
from __future__ import annotations


class SmaregiError(Exception):
    """Base: `status` is the HTTP status (0 when none arrived), `detail` Smaregi's own words."""

    def __init__(self, status: int, title: str = "", detail: str = ""):
        super().__init__(f"{status} {title}: {detail}".strip())
        self.status = status
        self.title = title
        self.detail = detail

    @property
    def field(self) -> str | None:
        """Smaregi writes field errors as "[fieldName] message"."""
        if self.detail.startswith("[") and "]" in self.detail:
            return self.detail[1:self.detail.index("]")]
        return None


class SmaregiBadRequest(SmaregiError):
    """400: validation or a business rule (e.g. not enough points). Nothing was applied."""


class SmaregiUnauthorized(SmaregiError):
    """401: bad client credentials or an expired token."""


class SmaregiForbidden(SmaregiError):
    """403: scope not granted, or the contract's plan has no member/point APIs."""


class SmaregiNotFound(SmaregiError):
    """404: unknown member or contract."""


class SmaregiRateLimited(SmaregiError):
    """429: nothing was applied; wait `retry_after_s`."""

    def __init__(self, retry_after_s: float, detail: str = ""):
        super().__init__(429, "Too Many Requests", detail)
        self.retry_after_s = retry_after_s


class SmaregiServerError(SmaregiError):
    """5xx. For a write, Smaregi may or may not have applied it."""


class SmaregiTimeout(SmaregiError):
    """No answer in time, or the connection dropped after sending: the outcome is unknown."""

    def __init__(self, detail: str = "timeout"):
        super().__init__(0, "Timeout", detail)


class SmaregiUnreachable(SmaregiError):
    """The connection could not be made: nothing was sent, so nothing was applied."""

    def __init__(self, detail: str = "unreachable"):
        super().__init__(0, "Unreachable", detail)


class ContractPaused(SmaregiError):
    """We are waiting out a 429 (or the rate limit) for this contract longer than the caller can wait."""

    def __init__(self, wait_s: float):
        super().__init__(429, "Paused", f"contract paused for {wait_s:.2f}s")
        self.wait_s = wait_s


AMBIGUOUS = (SmaregiServerError, SmaregiTimeout)
