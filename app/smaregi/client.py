"""The one Smaregi Platform API client (requests). Nothing else builds Smaregi URLs.

Rules it keeps:
- every call has a timeout, bounded by the caller's deadline (a shopper waits; a worker doesn't);
- every call takes a slot from the shared per-contract rate limit (token requests count as writes;
  a shopper's reads side by side take theirs in one reservation);
- numbers travel as JSON strings: we send strings and hand callers ints;
- problem+json errors become typed exceptions (errors.py);
- only safe calls (GET) are retried on 5xx/timeouts; a write is retried only when Smaregi provably
  did not apply it (429, 401 with a stale token, connection never made).
"""
from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ..crypto import TokenCipher
from ..db import Database
from ..timing import waiting_on
from .errors import (
    SmaregiBadRequest,
    SmaregiError,
    SmaregiForbidden,
    SmaregiNotFound,
    SmaregiRateLimited,
    SmaregiServerError,
    SmaregiTimeout,
    SmaregiUnauthorized,
    SmaregiUnreachable,
)
from .ratelimit import RateLimiter
from .tokens import ContractTokens

log = logging.getLogger(__name__)

JST = timezone(timedelta(hours=9))
SCOPES = "pos.customers:read pos.customers:write pos.transactions:read"
DEFAULT_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 3.0
DEFAULT_BUDGET_S = 30.0
SAFE_ATTEMPTS = 3
MAX_429_RETRIES = 5

# Point-like numeric fields we turn into ints at the edge; ids and codes stay strings.
_INT_FIELDS = {"point", "mile", "newPoint", "spendPoint", "totalPoint", "pointDiscount", "total", "subtotal"}


@dataclass(frozen=True)
class PointBalance:
    customer_id: str
    points: int
    expires_on: date | None


@dataclass(frozen=True)
class PointChange:
    customer_id: str
    points: int  # the balance after the change
    expires_on: date | None
    transaction_ids: list[str]


def _parse_date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _from_wire(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_from_wire(v) for v in obj]
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in _INT_FIELDS and isinstance(value, str) and value.lstrip("-").isdigit():
                out[key] = int(value)
            else:
                out[key] = _from_wire(value)
        return out
    return obj


def _to_wire(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in fields.items()}


def smaregi_time(moment: datetime) -> str:
    """Smaregi's date-time format, in Japan time: 2024-01-01T00:00:00+09:00."""
    return moment.astimezone(JST).isoformat(timespec="seconds")


def _retry_after(value: str | None) -> float:
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else 1.0


class Smaregi:
    """Factory and shared state (HTTP pool, token cache) for all contracts."""

    def __init__(self, *, id_base: str, api_base: str, client_id: str, client_secret: str,
                 db: Database, cipher: TokenCipher, limiter: RateLimiter,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        self.id_base = id_base.rstrip("/")
        self.api_base = api_base.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.limiter = limiter
        self.timeout_s = timeout_s
        self.http = requests.Session()
        # Nothing of ours is configured through the environment (proxies, ~/.netrc, CA bundles),
        # and requests would look all of them up again on every call (about 0.1 ms each here).
        self.http.trust_env = False
        self.http.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=32))
        self.http.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=32))
        self.tokens = ContractTokens(db, cipher, self._fetch_token, self._reserve_token_slot)

    def contract(self, contract_id: str) -> SmaregiClient:
        return SmaregiClient(self, contract_id)

    def _reserve_token_slot(self, contract_id: str, deadline: float) -> None:
        with waiting_on("ratelimit"):
            self.limiter.acquire(contract_id, "write", deadline)

    def _fetch_token(self, contract_id: str, deadline: float) -> tuple[str, int]:
        url = f"{self.id_base}/app/{contract_id}/token"
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            raise SmaregiTimeout("no time left for a token")
        try:
            with waiting_on("smaregi"):
                resp = self.http.post(url, auth=(self.client_id, self.client_secret),
                                      data={"grant_type": "client_credentials", "scope": SCOPES},
                                      timeout=(min(CONNECT_TIMEOUT_S, remaining), min(self.timeout_s, remaining)))
        except requests.Timeout:
            raise SmaregiTimeout("token request timed out") from None
        except requests.ConnectionError as exc:
            raise SmaregiUnreachable(type(exc).__name__) from None
        if resp.status_code != 200:
            raise _error_for(resp)
        body = resp.json()
        log.info("smaregi.token_fetched", extra={"contract_id": contract_id})
        return body["access_token"], int(body.get("expires_in", 3600))


class SmaregiClient:
    """One contract's API surface (paths relative to /{contract_id}/pos)."""

    def __init__(self, smaregi: Smaregi, contract_id: str):
        self.s = smaregi
        self.contract_id = contract_id

    @contextmanager
    def reads_reserved(self, reads: int, *, deadline: float) -> Iterator[None]:
        """The rate-limit slots of the `reads` calls a shopper's request is about to make side by
        side, in one round trip; calls made in this context (or copies of it on a pool) use them."""
        with waiting_on("ratelimit"):
            reservation = self.s.limiter.reserve(self.contract_id, "read", reads, deadline)
        with reservation:
            yield

    # -- members -----------------------------------------------------------------------------
    def find_customer_by_code(self, code: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        rows = self._request("GET", "/customers", params={"customer_code": code, "limit": 1}, deadline=deadline)
        return rows[0] if rows else None

    def list_customers(self, *, page: int = 1, limit: int = 1000, updated_from: datetime | None = None,
                       updated_to: datetime | None = None, id_from: str | None = None, id_to: str | None = None,
                       sort: str = "customerId", deadline: float | None = None,
                       background: bool = False) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"page": page, "limit": limit, "sort": sort}
        if updated_from is not None:
            params["upd_date_time-from"] = smaregi_time(updated_from)
        if updated_to is not None:
            params["upd_date_time-to"] = smaregi_time(updated_to)
        if id_from is not None:
            params["customer_id-from"] = id_from
        if id_to is not None:
            params["customer_id-to"] = id_to
        return self._request("GET", "/customers", params=params, deadline=deadline, background=background)

    def get_customer(self, customer_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        return self._request("GET", f"/customers/{customer_id}", deadline=deadline)

    def create_customer(self, fields: dict[str, Any], *, deadline: float | None = None) -> dict[str, Any]:
        return self._request("POST", "/customers", json=_to_wire(fields), deadline=deadline)

    def update_customer(self, customer_id: str, fields: dict[str, Any], *,
                        deadline: float | None = None) -> dict[str, Any]:
        return self._request("PATCH", f"/customers/{customer_id}", json=_to_wire(fields), deadline=deadline)

    def bulk_create_customers(self, members: list[dict[str, Any]], callback_url: str, *,
                              deadline: float | None = None, background: bool = False) -> str | None:
        """Asynchronous create of ≤ 100 members; Smaregi posts the outcome to `callback_url`.
        Returns Smaregi's request id when it gives one (the answer's shape is inferred)."""
        return _request_id(self._request("POST", "/customers/bulk", json=_bulk_body(members, callback_url),
                                         deadline=deadline, background=background))

    def bulk_update_customers(self, members: list[dict[str, Any]], callback_url: str, *,
                              deadline: float | None = None, background: bool = False) -> str | None:
        """Asynchronous partial update of ≤ 100 members, each carrying its `customerId`."""
        return _request_id(self._request("PATCH", "/customers/bulk", json=_bulk_body(members, callback_url),
                                         deadline=deadline, background=background))

    def required_columns(self, *, deadline: float | None = None) -> dict[str, bool]:
        rows = self._request("GET", "/customer_required_column_setting", deadline=deadline)
        return {r["columnName"]: str(r.get("value")) == "1" for r in rows}

    # -- points ------------------------------------------------------------------------------
    def get_points(self, customer_id: str, *, deadline: float | None = None,
                   background: bool = False) -> PointBalance | None:
        rows = self._request("GET", "/customers/point", params={"customer_id": customer_id, "limit": 1},
                             deadline=deadline, background=background)
        if not rows:
            return None
        row = rows[0]
        return PointBalance(str(row["customerId"]), int(row.get("point") or 0), _parse_date(row.get("pointExpireDate")))

    def add_points(self, customer_id: str, delta: int, *, deadline: float | None = None,
                   expire_on: date | None = None, background: bool = False) -> PointChange:
        """Relative change (negative deducts). NOT idempotent: never call it again after an
        ambiguous failure; reconcile from transactions instead. `expire_on` moves the member's
        pointExpireDate; `background`: a shopper is not waiting, so shoppers' writes go first."""
        fields: dict[str, Any] = {"point": str(delta)}
        if expire_on is not None:
            fields["pointExpireDate"] = expire_on.isoformat()
        body = self._request("POST", f"/customers/{customer_id}/point/add", json=fields,
                             deadline=deadline, background=background)
        return PointChange(str(body["customerId"]), int(body.get("point") or 0),
                           _parse_date(body.get("pointExpireDate")),
                           [str(t) for t in body.get("transactionHeadIds") or []])

    # -- transactions ----------------------------------------------------------------------------
    def list_transactions(self, *, customer_code: str, updated_from: datetime, updated_to: datetime,
                          page: int = 1, limit: int = 100, deadline: float | None = None,
                          background: bool = False) -> list[dict[str, Any]]:
        """A window of at most 31 days (Smaregi's rule), newest first."""
        params = {"customer_code": customer_code, "upd_date_time-from": smaregi_time(updated_from),
                  "upd_date_time-to": smaregi_time(updated_to), "page": page, "limit": limit,
                  "sort": "transactionDateTime:desc"}
        return self._request("GET", "/transactions", params=params, deadline=deadline, background=background)

    def list_point_transactions(self, *, division: str, updated_from: datetime, updated_to: datetime,
                                page: int = 1, limit: int = 1000,
                                deadline: float | None = None) -> list[dict[str, Any]]:
        """The contract's transactions of one division (6 add, 7 subtract, 8 lapse) in a ≤31-day window."""
        params = {"transaction_head_division": division, "upd_date_time-from": smaregi_time(updated_from),
                  "upd_date_time-to": smaregi_time(updated_to), "page": page, "limit": limit,
                  "sort": "transactionHeadId"}
        return self._request("GET", "/transactions", params=params, deadline=deadline)

    def get_transaction(self, transaction_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        """One transaction head (`GET /transactions/{id}`): whose it is, after a `pos:transactions` webhook."""
        return self._request("GET", f"/transactions/{transaction_id}", deadline=deadline)

    # -- plumbing --------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, params: dict | None = None, json: dict | None = None,
                 deadline: float | None = None, background: bool = False) -> Any:
        safe = method == "GET"
        kind = "read" if safe else "write"
        deadline = deadline if deadline is not None else time.monotonic() + DEFAULT_BUDGET_S
        attempt, retried_401, rate_limited = 0, False, 0
        while True:
            attempt += 1
            token = None
            try:
                token = self.s.tokens.get(self.contract_id, deadline)
                if not self.s.limiter.take_reserved(self.contract_id, kind):
                    with waiting_on("ratelimit"):
                        self.s.limiter.acquire(self.contract_id, kind, deadline, background=background)
                return self._send(method, path, token, params, json, deadline)
            except SmaregiRateLimited as exc:
                # Not applied, by definition: every process waits Retry-After, then we try again.
                self.s.limiter.pause(self.contract_id, exc.retry_after_s)
                rate_limited += 1
                if rate_limited > MAX_429_RETRIES:
                    raise
            except SmaregiUnauthorized:
                if retried_401 or token is None:
                    raise
                retried_401 = True  # the token was revoked or expired early: one fresh token, one retry
                self.s.tokens.invalidate(self.contract_id, token, deadline)
            except (SmaregiUnreachable, SmaregiServerError, SmaregiTimeout) as exc:
                retryable = isinstance(exc, SmaregiUnreachable) or safe
                backoff = min(2.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                if not retryable or attempt >= SAFE_ATTEMPTS or time.monotonic() + backoff >= deadline - 0.05:
                    raise
                time.sleep(backoff)

    def _send(self, method: str, path: str, token: str, params: dict | None, json: dict | None,
              deadline: float) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            raise SmaregiUnreachable("no time left before sending")
        url = f"{self.s.api_base}/{self.contract_id}/pos{path}"
        started = time.monotonic()
        try:
            with waiting_on("smaregi"):
                resp = self.s.http.request(method, url, params=params, json=json,
                                           timeout=(min(CONNECT_TIMEOUT_S, remaining), min(self.s.timeout_s, remaining)),
                                           headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        except requests.ConnectTimeout:
            raise SmaregiUnreachable("connect timeout") from None
        except requests.Timeout:
            raise SmaregiTimeout("read timeout") from None
        except requests.ConnectionError as exc:
            # Refused before anything was sent is safe to retry; a reset mid-request is not.
            if "NewConnectionError" in repr(exc):
                raise SmaregiUnreachable("connection refused") from None
            raise SmaregiTimeout("connection dropped") from None
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("smaregi.call", extra={"contract_id": self.contract_id, "method": method, "path": path,
                                         "status": resp.status_code, "ms": round(elapsed_ms)})
        if 200 <= resp.status_code < 300:
            return _from_wire(resp.json()) if resp.content else None
        raise _error_for(resp)


BULK_MAX = 100  # members per bulk request (reference §3.3)


def _bulk_body(members: list[dict[str, Any]], callback_url: str) -> dict[str, Any]:
    if not 0 < len(members) <= BULK_MAX:
        raise ValueError(f"a bulk request carries 1 to {BULK_MAX} members")
    return {"customers": [_to_wire(m) for m in members], "callbackUrl": callback_url}


def _request_id(body: Any) -> str | None:
    # Inferred: the documentation we could read names `requestId` in the callback, not in this answer.
    value = body.get("requestId") if isinstance(body, dict) else None
    return str(value) if value is not None else None


def _error_for(resp: requests.Response) -> SmaregiError:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    title = str(body.get("title") or resp.reason or "")
    detail = str(body.get("detail") or body.get("error_description") or body.get("error") or "")
    status = resp.status_code
    if status == 429:
        return SmaregiRateLimited(_retry_after(resp.headers.get("Retry-After")), detail)
    cls = {400: SmaregiBadRequest, 401: SmaregiUnauthorized, 403: SmaregiForbidden,
           404: SmaregiNotFound}.get(status)
    if cls is None:
        cls = SmaregiServerError if status >= 500 else SmaregiBadRequest
    return cls(status, title, detail)
