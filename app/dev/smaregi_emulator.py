"""A local Smaregi Platform API (IdP + POS API) for development, tests and benchmarks.

Faithful to shared/reference/smaregi.md §11 where the reference is sure, and says so where it
guesses. One server answers both hosts: `/app/{contract}/token` (IdP) and `/{contract}/pos/...`.

- numbers as JSON strings, problem+json errors ({type, title, detail: "[field] msg", status});
- client-credentials tokens that expire (injectable clock), scope checks (read vs write → 403);
- members with the documented field limits, unique customerCode, required-column settings;
- points read lapses expired points first (division 8); point/add refuses a negative result (400);
  every change appends a transaction (6 add, 7 subtract, 8 lapse), and there is NO idempotency;
- a fixed clock-second rate limit per contract (reads, writes; the token call counts as a write):
  429 with Retry-After;
- switchable faults: forced status, latency, stall AFTER applying a change (the double-deduction
  trap), forced 401;
- Smaregi ID's sign-in (authorization code + PKCE S256): `/authorize` approves at once as the
  configured contract's user (dev has no password page) or answers a fault (`denied`: the user
  refused; `wrong_state`: the redirect carries another state), `/authorize/token` exchanges a code
  once (client, redirect URI and verifier must match), `/userinfo` names the contract. The shape of
  user info beyond `sub` / `contract.id` / `contract.is_owner` is inferred.
- webhooks out (smaregi_webhooks.py): `pos:customers` when a member is created, edited or deleted
  (`bulk-update` / `bulk-created` with the ids a bulk job changed) and `pos:transactions` when
  points change, through the API or the dev controls below.
- asynchronous bulk create/update (`POST`/`PATCH /customers/bulk`, ≤ 100 members): answers a
  request id at once, applies the members a moment later and posts `{"requestId", "result"}` to
  the `callbackUrl` (the per-member result entries are our guess; reference §7.1 could not read
  them), with bulk faults: `failed` (nothing applied), `lost_callback` (applied, never reported),
  `partial` (only the first half applied).

Control endpoints under /_emulator/ (reset, faults, stats, members) serve tests and the dev runner.
"""
from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from flask import Flask, jsonify, redirect, request

from .smaregi_webhooks import WebhookSender

# The `pos:customers` action after a bulk job: reference §7.1 lists `bulk-update`; it names no
# action for a bulk create, so `bulk-created` is our guess (the app treats every action alike).
BULK_UPDATED = "bulk-update"
BULK_CREATED = "bulk-created"

JST = timezone(timedelta(hours=9))
READ_SCOPE, WRITE_SCOPE = "pos.customers:read", "pos.customers:write"
TRANSACTIONS_SCOPE = "pos.transactions:read"
KNOWN_SCOPES = {READ_SCOPE, WRITE_SCOPE, TRANSACTIONS_SCOPE, "pos.stores:read"}
MEMBER_PLANS = {"premium_plus", "food_business", "retail_business"}
MAX_POINTS = 999_999_999

MEMBER_FIELDS = [
    "customerId", "customerCode", "customerNo", "rank", "staffRank", "lastName", "firstName", "lastKana",
    "firstKana", "postCode", "address", "phoneNumber", "faxNumber", "mobileNumber", "mailAddress",
    "mailAddress2", "mailAddress3", "companyName", "departmentName", "managerialPosition", "sex",
    "birthDate", "pointExpireDate", "lastComeDateTime", "entryDate", "leaveDate", "pointGivingUnitPrice",
    "pointGivingUnit", "pinCode", "passportNo", "nationality", "alphabetName", "mailReceiveFlag", "note",
    "note2", "favoriteList", "browsingList", "status", "storeId", "insDateTime", "updDateTime",
]
WRITABLE = set(MEMBER_FIELDS) - {"customerId", "insDateTime", "updDateTime", "pointExpireDate"}

ASCII_PRINTABLE = re.compile(r"^[ -~]+$")
KANA = re.compile(r"^[ァ-ヶー・\u3000 -~]+$")  # the documented class, its reversed ー-・ range read as two characters
PHONE = re.compile(r"^[a-zA-Z0-9 -/:-@\[-`{-~]{1,20}$")
LIMITS = {"customerCode": 20, "customerNo": 20, "rank": 20, "staffRank": 20, "lastName": 85,
          "firstName": 85, "lastKana": 85, "firstKana": 85, "postCode": 10, "address": 85,
          "mailAddress": 256, "companyName": 85, "note": 1000, "note2": 1000}
ENUMS = {"sex": {"0", "1", "2"}, "mailReceiveFlag": {"0", "1"}, "status": {"0", "1", "2", "3", "4"}}


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


@dataclass
class Fault:
    """Applies to requests whose "METHOD /path" matches `match` (a regex), `count` times (None: always)."""

    match: str = ".*"
    status: int | None = None  # answer this status without doing anything
    latency_s: float = 0.0  # wait before handling
    stall_after_apply_s: float = 0.0  # handle (apply!), then wait before answering
    count: int | None = None

    def hit(self, key: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if not re.search(self.match, key):
            return False
        if self.count is not None:
            self.count -= 1
        return True


CODE_TTL_S = 600


@dataclass
class SignInCode:
    contract_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    expires_at: float
    used: bool = False


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class BulkFault:
    """Applies to the next `count` bulk requests (None: all)."""

    mode: str  # failed | lost_callback | partial
    count: int | None = None


@dataclass
class Contract:
    contract_id: str
    plan: str = "premium_plus"
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    points: dict[str, dict[str, Any]] = field(default_factory=dict)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    required_columns: dict[str, str] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)  # customerCode → customerId (uniqueness at 50,000 members)
    next_customer_id: int = 1
    next_transaction_id: int = 1000


class SmaregiEmulator:
    def __init__(self, clients: dict[str, str] | None = None, contracts: list[str] | None = None,
                 reads_per_s: int = 10, writes_per_s: int = 4, token_ttl_s: int = 3600,
                 clock: Callable[[], float] = time.time):
        self.clients = dict(clients or {})
        self.reads_per_s, self.writes_per_s = reads_per_s, writes_per_s
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        self.lock = threading.RLock()
        self.contracts: dict[str, Contract] = {c: Contract(c) for c in (contracts or [])}
        self.tokens: dict[str, tuple[str, set[str], float]] = {}
        self.faults: list[Fault] = []
        self.windows: dict[tuple[str, str, int], int] = {}
        self.stats: dict[str, Any] = {}
        self.bulk_faults: list[BulkFault] = []
        self.bulk_delay_s = 0.05  # Smaregi works through a bulk request after answering it
        self.next_request_id = 1
        self.reset_stats()
        self.signin_contract: str | None = None  # whose user signs in at /authorize (None: the first contract)
        self.signin_fault: str | None = None  # "denied" | "wrong_state"
        self.codes: dict[str, SignInCode] = {}
        self.user_tokens: dict[str, tuple[str, float]] = {}  # user access token → (contract, expiry)
        self.webhooks = WebhookSender()

    # -- state helpers used by tests and the seeder -----------------------------------------------
    def reset_stats(self) -> None:
        with self.lock:
            self.stats = {"requests": 0, "token_requests": 0, "rate_limited": 0, "writes_by_second": {},
                          "point_changes_received": 0, "duplicate_codes": 0, "bulk_requests": 0, "bulk_members": 0,
                          "callbacks_sent": 0}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), JST)

    def stamp(self) -> str:
        return self.now().isoformat(timespec="seconds")

    def contract(self, contract_id: str) -> Contract:
        with self.lock:
            return self.contracts.setdefault(contract_id, Contract(contract_id))

    def add_member(self, contract_id: str, *, points: int = 0, expires_on: str | None = None,
                   **fields: Any) -> dict[str, Any]:
        with self.lock:
            c = self.contract(contract_id)
            member = self._create(c, {k: (str(v) if v is not None else None) for k, v in fields.items()})
            c.points[member["customerId"]] = {"point": points, "mile": 0, "pointExpireDate": expires_on,
                                              "insDateTime": self.stamp(), "updDateTime": self.stamp()}
            return member

    def add_sale(self, contract_id: str, customer_id: str, *, earned: int, used: int = 0, total: int = 0,
                 when: datetime | None = None) -> dict[str, Any]:
        """A register sale that earned/used points (division 1), for history."""
        with self.lock:
            c = self.contract(contract_id)
            p = c.points[customer_id]
            p["point"] = p["point"] + earned - used
            head = self._transaction(c, customer_id, "1", new=earned, spend=used, total=total, when=when)
        self.webhooks.emit(contract_id, "pos:transactions", "created", [head["transactionHeadId"]])
        return head

    def edit_member(self, contract_id: str, customer_id: str, **fields: Any) -> dict[str, Any]:
        """An edit at the register (not validated like the API: the merchant's own screen)."""
        with self.lock:
            c = self.contract(contract_id)
            member = c.customers[customer_id]
            member.update({k: (str(v) if v is not None else None) for k, v in fields.items()})
            member["updDateTime"] = self.stamp()
            c.codes[member["customerCode"]] = customer_id
            member = dict(member)
        self.webhooks.emit(contract_id, "pos:customers", "edited", [customer_id])
        return member

    def delete_member(self, contract_id: str, customer_id: str) -> None:
        with self.lock:
            c = self.contract(contract_id)
            c.customers.pop(customer_id)
            c.points.pop(customer_id, None)
        self.webhooks.emit(contract_id, "pos:customers", "deleted", [customer_id])

    def balance(self, contract_id: str, customer_id: str) -> int:
        with self.lock:
            return self.contracts[contract_id].points[customer_id]["point"]

    def member_by_code(self, contract_id: str, code: str) -> dict[str, Any] | None:
        with self.lock:
            return next((m for m in self.contract(contract_id).customers.values()
                         if m["customerCode"] == code), None)

    def issue_code(self, contract_id: str, *, client_id: str, redirect_uri: str, code_challenge: str | None,
                   code: str | None = None) -> str:
        """What /authorize does once the user approved (tests use it to record a fixed code)."""
        code = code or uuid.uuid4().hex
        with self.lock:
            self.codes[code] = SignInCode(contract_id, client_id, redirect_uri, code_challenge,
                                          self.clock() + CODE_TTL_S)
        return code

    def add_fault(self, **kwargs: Any) -> Fault:
        fault = Fault(**kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.bulk_faults.clear()

    def add_bulk_fault(self, mode: str, count: int | None = None) -> BulkFault:
        if mode not in ("failed", "lost_callback", "partial"):
            raise ValueError(mode)
        fault = BulkFault(mode, count)
        with self.lock:
            self.bulk_faults.append(fault)
        return fault

    def _bulk_fault(self) -> str | None:
        with self.lock:
            for f in self.bulk_faults:
                if f.count is None or f.count > 0:
                    if f.count is not None:
                        f.count -= 1
                    return f.mode
        return None

    def _run_bulk(self, c: Contract, items: list[dict[str, Any]], creating: bool, callback_url: str,
                  request_id: str, fault: str | None) -> None:
        import requests

        time.sleep(self.bulk_delay_s)
        result = []
        with self.lock:
            applied = 0 if fault == "failed" else (len(items) + 1) // 2 if fault == "partial" else len(items)
            for item in items[:applied]:
                try:
                    if creating:
                        member = self._create(c, dict(item))
                    else:
                        fields = {k: v for k, v in item.items() if k != "customerId"}
                        member = c.customers.get(str(item.get("customerId")))
                        if member is None:
                            raise Problem(404, "Not Found", "会員が存在しません")
                        self._validate(c, fields, creating=False, current_id=member["customerId"])
                        member.update(fields)
                        member["updDateTime"] = self.stamp()
                        c.codes[member["customerCode"]] = member["customerId"]
                    result.append({"customerId": member["customerId"], "customerCode": member["customerCode"],
                                   "status": "success"})
                except Problem as exc:
                    result.append({"customerId": item.get("customerId"), "customerCode": item.get("customerCode"),
                                   "status": "error", "message": exc.detail})
            if fault == "failed":
                result = [{"customerId": i.get("customerId"), "customerCode": i.get("customerCode"),
                           "status": "error", "message": "一括処理に失敗しました"} for i in items]
        changed = [r["customerId"] for r in result if r["status"] == "success"]
        self.webhooks.emit(c.contract_id, "pos:customers", BULK_CREATED if creating else BULK_UPDATED, changed)
        if fault == "lost_callback":
            return
        try:
            requests.post(callback_url, json={"requestId": int(request_id), "result": result}, timeout=5,
                          headers={"Content-Type": "application/json;charset=UTF-8"})
            with self.lock:
                self.stats["callbacks_sent"] += 1
        except requests.RequestException:
            pass  # Smaregi does not retry a callback either (inferred)

    # -- core behaviour -----------------------------------------------------------------------------
    def _throttle(self, contract_id: str, kind: str) -> None:
        second = int(self.clock())
        limit = self.reads_per_s if kind == "read" else self.writes_per_s
        with self.lock:
            key = (contract_id, kind, second)
            used = self.windows.get(key, 0) + 1
            self.windows[key] = used
            if len(self.windows) > 5000:
                self.windows = {k: v for k, v in self.windows.items() if k[2] >= second - 5}
            if used > limit:
                self.stats["rate_limited"] += 1
                raise Problem(429, "Too Many Requests", "リクエスト数が上限を超えました",
                              {"Retry-After": "1"})
            if kind == "write":
                by_second = self.stats["writes_by_second"]
                by_second[second] = by_second.get(second, 0) + 1

    def _authorize(self, contract_id: str, scope: str) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        with self.lock:
            entry = self.tokens.get(token)
        if entry is None or entry[2] <= self.clock():
            raise Problem(401, "Unauthorized", "アクセストークンが無効です")
        if entry[0] != contract_id:
            raise Problem(401, "Unauthorized", "契約IDが一致しません")
        if scope not in entry[1]:
            raise Problem(403, "Forbidden", f"スコープ {scope} がありません")
        if self.contracts[contract_id].plan not in MEMBER_PLANS:
            raise Problem(403, "Forbidden", "ご契約のプランでは会員APIを利用できません")

    def _validate(self, c: Contract, fields: dict[str, Any], *, creating: bool, current_id: str | None = None):
        unknown = set(fields) - WRITABLE
        if unknown:
            name = sorted(unknown)[0]
            raise Problem(400, "Bad Request", f"[{name}] 不明な項目です")
        required = {"customerCode", "lastName", "firstName"} | {k for k, v in c.required_columns.items() if v == "1"}
        for name in required:
            if creating and not fields.get(name):
                raise Problem(400, "Bad Request", f"[{name}] 必須項目です")
            if not creating and name in fields and not fields[name]:
                raise Problem(400, "Bad Request", f"[{name}] null指定不可です")
        for name, value in fields.items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise Problem(400, "Bad Request", f"[{name}] 文字列で指定してください")
            if name in LIMITS and len(value) > LIMITS[name]:
                raise Problem(400, "Bad Request", f"[{name}] {LIMITS[name]}文字以内で入力してください")
            if name in ("customerCode", "customerNo") and not ASCII_PRINTABLE.match(value):
                raise Problem(400, "Bad Request", f"[{name}] 半角英数記号で入力してください")
            if name in ("lastKana", "firstKana") and not KANA.match(value):
                raise Problem(400, "Bad Request", f"[{name}] カタカナで入力してください")
            if name in ("phoneNumber", "faxNumber", "mobileNumber") and not PHONE.match(value):
                raise Problem(400, "Bad Request", f"[{name}] 電話番号の形式が正しくありません")
            if name in ENUMS and value not in ENUMS[name]:
                raise Problem(400, "Bad Request", f"[{name}] 値が不正です")
            if name in ("birthDate", "entryDate", "leaveDate"):
                try:
                    date.fromisoformat(value)
                except ValueError:
                    raise Problem(400, "Bad Request", f"[{name}] 日付の形式が正しくありません") from None
        code = fields.get("customerCode")
        owner = c.codes.get(code) if code else None
        if owner is not None and owner != current_id and c.customers.get(owner, {}).get("customerCode") == code:
            self.stats["duplicate_codes"] += 1  # someone tried to create or recode a member twice
            raise Problem(400, "Bad Request", "[customerCode] 会員コードが重複しています")

    def _create(self, c: Contract, fields: dict[str, Any]) -> dict[str, Any]:
        self._validate(c, fields, creating=True)
        customer_id = str(c.next_customer_id)
        c.next_customer_id += 1
        member = {name: None for name in MEMBER_FIELDS}
        member.update({"sex": "0", "mailReceiveFlag": "1", "status": "0", "entryDate": self.now().date().isoformat()})
        member.update(fields)
        member.update({"customerId": customer_id, "insDateTime": self.stamp(), "updDateTime": self.stamp()})
        c.customers[customer_id] = member
        c.codes[member["customerCode"]] = customer_id
        c.points.setdefault(customer_id, {"point": 0, "mile": 0, "pointExpireDate": None,
                                          "insDateTime": self.stamp(), "updDateTime": self.stamp()})
        return member

    def _transaction(self, c: Contract, customer_id: str, division: str, *, new: int = 0, spend: int = 0,
                     total: int = 0, when: datetime | None = None) -> dict[str, Any]:
        member = c.customers[customer_id]
        moment = (when or self.now()).astimezone(JST).isoformat(timespec="seconds")
        head = {"transactionHeadId": str(c.next_transaction_id), "transactionDateTime": moment,
                "transactionHeadDivision": division, "customerId": customer_id,
                "customerCode": member["customerCode"], "newPoint": str(new), "spendPoint": str(spend),
                "point": str(c.points[customer_id]["point"]), "total": str(total), "storeId": "1",
                "updDateTime": moment}
        c.next_transaction_id += 1
        c.transactions.append(head)
        return head

    def _lapse(self, c: Contract, customer_id: str) -> list[str]:
        p = c.points[customer_id]
        expiry = p.get("pointExpireDate")
        if expiry and p["point"] > 0 and date.fromisoformat(expiry) < self.now().date():
            lapsed = p["point"]
            p["point"] = 0
            p["updDateTime"] = self.stamp()
            return [self._transaction(c, customer_id, "8", spend=lapsed)["transactionHeadId"]]
        return []

    def _points_row(self, customer_id: str, p: dict[str, Any]) -> dict[str, Any]:
        return {"customerId": customer_id, "point": str(p["point"]), "mile": str(p["mile"]),
                "pointExpireDate": p["pointExpireDate"], "insDateTime": p["insDateTime"],
                "updDateTime": p["updDateTime"]}

    # -- HTTP -------------------------------------------------------------------------------------------
    def create_app(self) -> Flask:
        app = Flask("smaregi_emulator")
        em = self

        @app.errorhandler(Problem)
        def problem(exc: Problem):
            resp = jsonify({"type": "about:blank", "title": exc.title, "detail": exc.detail, "status": exc.status})
            resp.status_code = exc.status
            resp.headers.update(exc.headers)
            resp.mimetype = "application/problem+json"
            return resp

        @app.before_request
        def faults():
            if request.path.startswith("/_emulator"):
                return
            key = f"{request.method} {request.path}"
            with em.lock:
                em.stats["requests"] += 1
                em.stats["point_changes_received"] += request.path.endswith("/point/add")
                hits = [f for f in em.faults if f.hit(key)]
            for f in hits:
                if f.latency_s:
                    time.sleep(f.latency_s)
                if f.status:
                    raise Problem(f.status, "Injected fault", f"injected {f.status}",
                                  {"Retry-After": "1"} if f.status == 429 else None)
            request.environ["emulator.stall_s"] = max((f.stall_after_apply_s for f in hits), default=0.0)
            return

        @app.after_request
        def stall(resp):
            delay = request.environ.get("emulator.stall_s", 0.0)
            if delay:
                time.sleep(delay)
            return resp

        @app.post("/app/<contract_id>/token")
        def token(contract_id: str):
            with em.lock:
                em.stats["token_requests"] += 1
            auth = request.authorization
            if auth is None or em.clients.get(auth.username or "") != auth.password:
                raise Problem(401, "Unauthorized", "クライアント認証に失敗しました")
            if contract_id not in em.contracts:
                raise Problem(404, "Not Found", "契約が存在しません")
            em._throttle(contract_id, "write")
            if request.form.get("grant_type") != "client_credentials":
                raise Problem(400, "Bad Request", "[grant_type] unsupported_grant_type")
            scopes = set(request.form.get("scope", "").split())
            if not scopes or not scopes <= KNOWN_SCOPES:
                raise Problem(400, "Bad Request", "[scope] invalid_scope")
            value = uuid.uuid4().hex + uuid.uuid4().hex
            with em.lock:
                em.tokens[value] = (contract_id, scopes, em.clock() + em.token_ttl_s)
            return jsonify({"access_token": value, "token_type": "Bearer", "expires_in": em.token_ttl_s,
                            "scope": " ".join(sorted(scopes))})

        def guard(contract_id: str, scope: str, kind: str) -> Contract:
            if contract_id not in em.contracts:
                raise Problem(404, "Not Found", "契約が存在しません")
            em._authorize(contract_id, scope)
            em._throttle(contract_id, kind)
            return em.contracts[contract_id]

        def paging() -> tuple[int, int]:
            try:
                limit = int(request.args.get("limit", "100"))
                page = int(request.args.get("page", "1"))
            except ValueError:
                raise Problem(400, "Bad Request", "[limit] 数値で指定してください") from None
            if not 1 <= limit <= 1000:
                raise Problem(400, "Bad Request", "[limit] 1から1000の範囲で指定してください")
            if page < 1:
                raise Problem(400, "Bad Request", "[page] 1以上で指定してください")
            return limit, page

        def window(required: bool) -> tuple[datetime | None, datetime | None]:
            raw_from, raw_to = request.args.get("upd_date_time-from"), request.args.get("upd_date_time-to")
            if required and not (raw_from and raw_to):
                raise Problem(400, "Bad Request", "[upd_date_time-from] 日付範囲は必須です")
            try:
                start = datetime.fromisoformat(raw_from) if raw_from else None
                end = datetime.fromisoformat(raw_to) if raw_to else None
            except ValueError:
                raise Problem(400, "Bad Request", "[upd_date_time-from] 日時の形式が正しくありません") from None
            if start and end and end - start > timedelta(days=31):
                raise Problem(400, "Bad Request", "[upd_date_time-to] 範囲は31日以内で指定してください")
            return start, end

        def in_window(stamp: str, start, end) -> bool:
            moment = datetime.fromisoformat(stamp)
            return (start is None or moment >= start) and (end is None or moment <= end)

        def id_range() -> tuple[int | None, int | None]:
            try:
                low, high = (int(request.args[k]) if k in request.args else None
                             for k in ("customer_id-from", "customer_id-to"))
            except ValueError:
                raise Problem(400, "Bad Request", "[customer_id-from] 数値で指定してください") from None
            return low, high

        def sort_rows(rows: list[dict[str, Any]], default: str) -> list[dict[str, Any]]:
            spec = request.args.get("sort", default)
            for part in reversed(spec.split(",")):
                name, _, direction = part.partition(":")
                rows.sort(key=lambda r: (len(r.get(name) or ""), r.get(name) or "") if name.endswith("Id")
                          else (r.get(name) or ""), reverse=direction == "desc")
            return rows

        @app.get("/<contract_id>/pos/customers")
        def list_customers(contract_id: str):
            c = guard(contract_id, READ_SCOPE, "read")
            limit, page = paging()
            start, end = window(required=False)
            low, high = id_range()
            with em.lock:
                if low is not None and high is not None and high - low <= 1000:  # look up, not a scan of 50,000
                    rows = [c.customers[str(i)] for i in range(low, high + 1) if str(i) in c.customers]
                else:
                    rows = [r for r in c.customers.values() if (low is None or int(r["customerId"]) >= low)
                            and (high is None or int(r["customerId"]) <= high)]
                if "customer_code" in request.args:  # the code index, not a scan of every member
                    owner = c.codes.get(request.args["customer_code"])
                    rows = [c.customers[owner]] if owner in c.customers else []
                for name in ("customer_code", "customer_no"):
                    if name in request.args:
                        key = "customerCode" if name == "customer_code" else "customerNo"
                        rows = [r for r in rows if r[key] == request.args[name]]
                if start or end:
                    rows = [r for r in rows if in_window(r["updDateTime"], start, end)]
                rows = sort_rows([dict(r) for r in rows], "customerId")
            return jsonify(rows[(page - 1) * limit: page * limit])

        @app.post("/<contract_id>/pos/customers")
        def create_customer(contract_id: str):
            c = guard(contract_id, WRITE_SCOPE, "write")
            with em.lock:
                member = em._create(c, request.get_json(force=True) or {})
            em.webhooks.emit(contract_id, "pos:customers", "created", [member["customerId"]])
            return jsonify(member)

        @app.get("/<contract_id>/pos/customers/<customer_id>")
        def get_customer(contract_id: str, customer_id: str):
            c = guard(contract_id, READ_SCOPE, "read")
            with em.lock:
                if customer_id not in c.customers:
                    raise Problem(404, "Not Found", "会員が存在しません")
                return jsonify(dict(c.customers[customer_id]))

        @app.patch("/<contract_id>/pos/customers/<customer_id>")
        def update_customer(contract_id: str, customer_id: str):
            c = guard(contract_id, WRITE_SCOPE, "write")
            fields = request.get_json(force=True) or {}
            with em.lock:
                if customer_id not in c.customers:
                    raise Problem(404, "Not Found", "会員が存在しません")
                em._validate(c, fields, creating=False, current_id=customer_id)
                c.customers[customer_id].update(fields)
                c.customers[customer_id]["updDateTime"] = em.stamp()
                c.codes[c.customers[customer_id]["customerCode"]] = customer_id
                member = dict(c.customers[customer_id])
            em.webhooks.emit(contract_id, "pos:customers", "edited", [customer_id])
            return jsonify(member)

        @app.delete("/<contract_id>/pos/customers/<customer_id>")
        def delete_customer(contract_id: str, customer_id: str):
            c = guard(contract_id, WRITE_SCOPE, "write")
            with em.lock:
                if c.customers.pop(customer_id, None) is None:
                    raise Problem(404, "Not Found", "会員が存在しません")
                c.points.pop(customer_id, None)
            em.webhooks.emit(contract_id, "pos:customers", "deleted", [customer_id])
            return ("", 200)

        def bulk(contract_id: str, creating: bool):
            c = guard(contract_id, WRITE_SCOPE, "write")
            body = request.get_json(force=True, silent=True) or {}
            items, callback_url = body.get("customers"), body.get("callbackUrl")
            if not isinstance(items, list) or not 1 <= len(items) <= 100 \
                    or not all(isinstance(i, dict) for i in items):
                raise Problem(400, "Bad Request", "[customers] 1件以上100件以内で指定してください")
            if not isinstance(callback_url, str) or len(callback_url) > 511 \
                    or not re.fullmatch(r"https?://\S+", callback_url):
                raise Problem(400, "Bad Request", "[callbackUrl] URLの形式が正しくありません")
            if not creating and not all(i.get("customerId") for i in items):
                raise Problem(400, "Bad Request", "[customerId] 必須項目です")
            with em.lock:
                request_id = str(em.next_request_id)
                em.next_request_id += 1
                em.stats["bulk_requests"] += 1
                em.stats["bulk_members"] += len(items)
            threading.Thread(target=em._run_bulk, args=(c, items, creating, callback_url, request_id,
                                                         em._bulk_fault()), daemon=True).start()
            return jsonify({"requestId": request_id})

        @app.post("/<contract_id>/pos/customers/bulk")
        def bulk_create(contract_id: str):
            return bulk(contract_id, creating=True)

        @app.patch("/<contract_id>/pos/customers/bulk")
        def bulk_update(contract_id: str):
            return bulk(contract_id, creating=False)

        @app.get("/<contract_id>/pos/customer_required_column_setting")
        def required_columns(contract_id: str):
            c = guard(contract_id, READ_SCOPE, "read")
            return jsonify([{"columnName": k, "value": v} for k, v in sorted(c.required_columns.items())])

        @app.get("/<contract_id>/pos/customers/point")
        def points(contract_id: str):
            c = guard(contract_id, READ_SCOPE, "read")
            limit, page = paging()
            with em.lock:
                ids = [request.args["customer_id"]] if "customer_id" in request.args else list(c.points)
                rows = []
                for customer_id in ids:
                    if customer_id in c.points:
                        em._lapse(c, customer_id)  # reading lapses expired points first (documented)
                        rows.append(em._points_row(customer_id, c.points[customer_id]))
            return jsonify(rows[(page - 1) * limit: page * limit])

        def change(contract_id: str, customer_id: str, relative: bool):
            c = guard(contract_id, WRITE_SCOPE, "write")
            body = request.get_json(force=True) or {}
            raw = body.get("point")
            if raw is not None and (not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw)):
                raise Problem(400, "Bad Request", "[point] 数値の文字列で指定してください")
            with em.lock:
                if customer_id not in c.customers:
                    raise Problem(404, "Not Found", "会員が存在しません")
                head_ids = em._lapse(c, customer_id)
                p = c.points[customer_id]
                value = int(raw or 0)
                new = p["point"] + value if relative else value
                if new < 0:
                    raise Problem(400, "Bad Request", "[point] ポイントが不足しています")
                if abs(value) > MAX_POINTS or new > MAX_POINTS:
                    raise Problem(400, "Bad Request", "[point] 999999999以下で指定してください")
                delta = new - p["point"]
                p["point"] = new
                if body.get("pointExpireDate"):
                    p["pointExpireDate"] = body["pointExpireDate"]
                p["updDateTime"] = em.stamp()
                if delta:
                    division = "6" if delta > 0 else "7"
                    head = em._transaction(c, customer_id, division, new=max(delta, 0), spend=max(-delta, 0))
                    head_ids.append(head["transactionHeadId"])
                em.webhooks.emit(contract_id, "pos:transactions", "created", head_ids)
                return jsonify({"customerId": customer_id, "mile": str(p["mile"]), "point": str(p["point"]),
                                "pointExpireDate": p["pointExpireDate"], "updDateTime": p["updDateTime"],
                                "transactionHeadIds": head_ids})

        @app.post("/<contract_id>/pos/customers/<customer_id>/point/add")
        def add_points(contract_id: str, customer_id: str):
            return change(contract_id, customer_id, relative=True)

        @app.patch("/<contract_id>/pos/customers/<customer_id>/point")
        def set_points(contract_id: str, customer_id: str):
            return change(contract_id, customer_id, relative=False)

        @app.get("/<contract_id>/pos/transactions")
        def transactions(contract_id: str):
            c = guard(contract_id, TRANSACTIONS_SCOPE, "read")
            limit, page = paging()
            start, end = window(required=True)
            with em.lock:
                rows = [dict(t) for t in c.transactions if in_window(t["updDateTime"], start, end)]
                if "customer_code" in request.args:
                    rows = [t for t in rows if t["customerCode"] == request.args["customer_code"]]
                if "transaction_head_division" in request.args:
                    rows = [t for t in rows if t["transactionHeadDivision"] == request.args["transaction_head_division"]]
                rows = sort_rows(rows, "transactionHeadId")
            return jsonify(rows[(page - 1) * limit: page * limit])

        # -- Smaregi ID sign-in (authorization code) ---------------------------------------------
        @app.get("/authorize")
        def authorize():
            args = request.args
            redirect_uri = args.get("redirect_uri", "")
            if args.get("client_id") not in em.clients or not redirect_uri.startswith(("http://", "https://")):
                raise Problem(400, "Bad Request", "[client_id] invalid_request")  # never redirect to the unknown
            back = redirect_uri + ("&" if "?" in redirect_uri else "?")
            state = args.get("state", "")
            if args.get("response_type") != "code" or "openid" not in args.get("scope", "").split():
                return redirect(back + urlencode({"error": "invalid_scope", "state": state}))
            challenge = args.get("code_challenge")
            if challenge and args.get("code_challenge_method", "plain") != "S256":
                return redirect(back + urlencode({"error": "invalid_request", "state": state}))
            if em.signin_fault == "denied":
                return redirect(back + urlencode({"error": "access_denied", "state": state}))
            contract_id = em.signin_contract or next(iter(em.contracts))
            code = em.issue_code(contract_id, client_id=args["client_id"], redirect_uri=redirect_uri,
                                 code_challenge=challenge)
            if em.signin_fault == "wrong_state":
                state = state + "x"
            return redirect(back + urlencode({"code": code, "state": state}))

        @app.post("/authorize/token")
        def user_token():
            auth = request.authorization
            if auth is None or em.clients.get(auth.username or "") != auth.password:
                raise Problem(401, "Unauthorized", "クライアント認証に失敗しました")
            if request.form.get("grant_type") != "authorization_code":
                raise Problem(400, "Bad Request", "[grant_type] unsupported_grant_type")
            with em.lock:
                issued = em.codes.get(request.form.get("code", ""))
                if issued is None or issued.used or issued.expires_at <= em.clock() \
                        or issued.client_id != auth.username:
                    raise Problem(400, "Bad Request", "[code] invalid_grant")
                issued.used = True  # a code works once, even when the rest of this request is wrong
                if request.form.get("redirect_uri") != issued.redirect_uri:
                    raise Problem(400, "Bad Request", "[redirect_uri] invalid_grant")
                verifier = request.form.get("code_verifier", "")
                if issued.code_challenge and _s256(verifier) != issued.code_challenge:
                    raise Problem(400, "Bad Request", "[code_verifier] invalid_grant")
                value = "emu-ut-" + uuid.uuid4().hex
                em.user_tokens[value] = (issued.contract_id, em.clock() + em.token_ttl_s)
            return jsonify({"access_token": value, "token_type": "Bearer", "expires_in": em.token_ttl_s,
                            "scope": "openid"})

        @app.get("/userinfo")
        def userinfo():
            header = request.headers.get("Authorization", "")
            with em.lock:
                entry = em.user_tokens.get(header[7:] if header.startswith("Bearer ") else "")
            if entry is None or entry[1] <= em.clock():
                raise Problem(401, "Unauthorized", "アクセストークンが無効です")
            return jsonify({"sub": f"{entry[0]}-user-1",
                            "contract": {"id": entry[0], "user_id": "1", "is_owner": True}})

        # -- control ----------------------------------------------------------------------------
        @app.post("/_emulator/signin")
        def signin_settings():
            body = request.get_json(force=True) or {}
            em.signin_contract, em.signin_fault = body.get("contract_id"), body.get("fault")
            return jsonify({"contract_id": em.signin_contract, "fault": em.signin_fault})
        @app.get("/<contract_id>/pos/transactions/<transaction_id>")
        def transaction(contract_id: str, transaction_id: str):
            c = guard(contract_id, TRANSACTIONS_SCOPE, "read")
            with em.lock:
                found = next((dict(t) for t in c.transactions if t["transactionHeadId"] == transaction_id), None)
            if found is None:
                raise Problem(404, "Not Found", "取引が存在しません")
            return jsonify(found)

        @app.post("/_emulator/webhooks")
        def configure_webhooks():
            """Where this contract's webhooks go: {url, secret, secret_header?, duplicate?, reorder?}."""
            em.webhooks.configure(**(request.get_json(force=True) or {}))
            return jsonify({"url": em.webhooks.target.url})

        @app.get("/_emulator/webhooks")
        def sent_webhooks():
            return jsonify(em.webhooks.target.sent)

        @app.patch("/_emulator/<contract_id>/members/<customer_id>")
        def edit_member(contract_id: str, customer_id: str):
            """A member edited at the register (rank, status, e-mail, code …): Smaregi sends `edited`."""
            return jsonify(em.edit_member(contract_id, customer_id, **(request.get_json(force=True) or {})))

        @app.delete("/_emulator/<contract_id>/members/<customer_id>")
        def remove_member(contract_id: str, customer_id: str):
            em.delete_member(contract_id, customer_id)
            return jsonify({})

        @app.post("/_emulator/<contract_id>/members/<customer_id>/sale")
        def register_sale(contract_id: str, customer_id: str):
            """A sale at the register that earned/used points: Smaregi sends `pos:transactions`."""
            body = request.get_json(force=True) or {}
            head = em.add_sale(contract_id, customer_id, earned=int(body.get("earned", 0)),
                               used=int(body.get("used", 0)), total=int(body.get("total", 0)))
            return jsonify(head)

        @app.post("/_emulator/faults")
        def add_fault():
            em.add_fault(**(request.get_json(force=True) or {}))
            return jsonify({"faults": len(em.faults)})

        @app.post("/_emulator/bulk_faults")
        def add_bulk_fault():
            data = request.get_json(force=True) or {}
            em.add_bulk_fault(data.get("mode", ""), data.get("count"))
            return jsonify({"bulk_faults": len(em.bulk_faults)})

        @app.delete("/_emulator/faults")
        def clear():
            em.clear_faults()
            return jsonify({"faults": 0})

        @app.get("/_emulator/stats")
        def stats():
            with em.lock:
                return jsonify(em.stats)

        @app.post("/_emulator/stats/reset")
        def reset_stats():
            em.reset_stats()
            return jsonify({})

        @app.post("/_emulator/<contract_id>/members")
        def seed_members(contract_id: str):
            created = [em.add_member(contract_id, **m) for m in request.get_json(force=True)]
            return jsonify([m["customerId"] for m in created])

        @app.get("/_emulator/<contract_id>/members")
        def members(contract_id: str):
            with em.lock:
                c = em.contract(contract_id)
                return jsonify([{**m, "point": c.points.get(m["customerId"], {}).get("point")}
                                for m in c.customers.values()])

        return app
