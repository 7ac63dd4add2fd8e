"""A local Shopify Admin API: token exchange and refresh, and the GraphQL operations Pointbridge uses.

Paths mirror Shopify's under a per-shop prefix, so SHOPIFY_ADMIN_API_BASE=http://127.0.0.1:PORT/{shop}
routes there: `/{shop}/admin/oauth/access_token`, `/{shop}/admin/api/{version}/graphql.json`.

- token exchange checks the id token (HS256 with the app secret, `aud`, `exp`, `dest` = shop);
- only one offline token per shop is live: a new one revokes the old (as Shopify does);
- a refresh returns a new access token AND a new refresh token; the previous refresh token keeps
  working until the new access token is first used (Shopify's "resilient refresh");
- GraphQL: discountCodeBasicCreate (duplicate code → TAKEN userError), discountCodeDelete,
  discountCodeDeactivate, codeDiscountNodeByCode (with asyncUsageCount; `use_code` redeems one),
  metafieldsSet (with compareDigest), customer, nodes(ids:) for customers' display names,
  shop { currencyCode ianaTimezone } (set per shop with `set_profile`);
- bulk operations: bulkOperationRunQuery (one running query per shop; a second is refused with
  the userError Shopify gives), `node(id:)` / currentBulkOperation polling, and at completion a
  JSONL file of the shop's customers behind a URL (one line per customer: the nested
  defaultAddress is an object, so it stays on its customer's line). No `bulk_operations/finish`
  webhook is sent: Pointbridge polls;
- faults: forced HTTP status, THROTTLED errors, latency, a bulk operation that FAILS.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from flask import Flask, abort, jsonify, request, send_file

ACCESS_TTL_S = 3600
REFRESH_TTL_S = 90 * 24 * 3600


@dataclass
class ShopState:
    domain: str
    access_token: str | None = None
    access_expires: float = 0.0
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token → access token it came with
    used_access_tokens: set[str] = field(default_factory=set)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)  # gid → customer
    discounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # gid → discount
    metafields: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    currency: str = "JPY"
    timezone: str = "Asia/Tokyo"


@dataclass
class GqlFault:
    match: str = ".*"  # regex over the query text
    status: int | None = None
    throttle: bool = False
    latency_s: float = 0.0
    count: int | None = None

    def hit(self, query: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if not re.search(self.match, query):
            return False
        if self.count is not None:
            self.count -= 1
        return True


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _public(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in op.items() if k != "shop"}


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ShopifyEmulator:
    def __init__(self, api_key: str, api_secret: str):
        self.api_key = api_key
        self.api_secret = api_secret
        self.lock = threading.RLock()
        self.shops: dict[str, ShopState] = {}
        self.faults: list[GqlFault] = []
        self.counts = {"token_exchange": 0, "refresh": 0, "graphql": 0}
        self.token_latency_s = 0.0  # slow token endpoint, to make concurrent refreshes overlap
        self.bulk_operations: dict[str, dict[str, Any]] = {}  # gid → operation (with its "shop")
        self.bulk_delay_s = 0.2  # how long a bulk query "runs" before its file is ready
        self.bulk_failures = 0  # the next N bulk operations end FAILED
        self.bulk_dir = tempfile.mkdtemp(prefix="shopify-bulk-")
        self._host_url = ""

    def shop(self, domain: str) -> ShopState:
        with self.lock:
            return self.shops.setdefault(domain, ShopState(domain))

    def add_customer(self, domain: str, customer_id: int, **fields: Any) -> dict[str, Any]:
        gid = f"gid://shopify/Customer/{customer_id}"
        customer = {"id": gid, "legacyResourceId": str(customer_id), **fields}
        with self.lock:
            self.shop(domain).customers[gid] = customer
        return customer

    def set_profile(self, domain: str, *, currency: str, timezone: str) -> None:
        with self.lock:
            s = self.shop(domain)
            s.currency, s.timezone = currency, timezone

    def add_fault(self, **kwargs: Any) -> GqlFault:
        fault = GqlFault(**kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def active_discounts(self, domain: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.shop(domain).discounts.values() if d["status"] == "ACTIVE"]

    def use_code(self, domain: str, code: str) -> None:
        """A checkout redeemed the code (what asyncUsageCount counts)."""
        with self.lock:
            for d in self.shop(domain).discounts.values():
                if d["code"] == code:
                    d["used"] = d.get("used", 0) + 1

    def metafield(self, domain: str, owner: str, namespace: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self.shop(domain).metafields.get((owner, namespace, key))

    # -- tokens -------------------------------------------------------------------------------------
    def _issue(self, s: ShopState, expiring: bool) -> dict[str, Any]:
        s.access_token = "emu-at-" + uuid.uuid4().hex
        body: dict[str, Any] = {"access_token": s.access_token, "scope": "read_customers,write_customers,"
                                "write_discounts,write_app_proxy"}
        if expiring:
            s.access_expires = time.time() + ACCESS_TTL_S
            refresh = "emu-rt-" + uuid.uuid4().hex
            s.refresh_tokens[refresh] = s.access_token
            body.update(expires_in=ACCESS_TTL_S, refresh_token=refresh, refresh_token_expires_in=REFRESH_TTL_S)
        else:
            s.access_expires = float("inf")
        return body

    def _token(self, domain: str):
        if self.token_latency_s:
            time.sleep(self.token_latency_s)
        body = request.get_json(silent=True) or {}
        if body.get("client_id") != self.api_key or body.get("client_secret") != self.api_secret:
            return jsonify({"error": "invalid_client"}), 401
        with self.lock:
            s = self.shop(domain)
            grant = body.get("grant_type")
            if grant == "urn:ietf:params:oauth:grant-type:token-exchange":
                try:
                    claims = jwt.decode(body.get("subject_token", ""), self.api_secret, algorithms=["HS256"],
                                        audience=self.api_key, leeway=10)
                except jwt.PyJWTError:
                    return jsonify({"error": "invalid_subject_token"}), 400
                if claims.get("dest", "").removeprefix("https://") != domain:
                    return jsonify({"error": "invalid_subject_token"}), 400
                self.counts["token_exchange"] += 1
                s.refresh_tokens.clear()  # the new token revokes everything before it
                return jsonify(self._issue(s, bool(body.get("expiring"))))
            if grant == "refresh_token":
                refresh = body.get("refresh_token", "")
                if refresh not in s.refresh_tokens:
                    return jsonify({"error": "invalid_grant"}), 400
                self.counts["refresh"] += 1
                # The old refresh token stays valid until the new access token is used.
                keep = {r: a for r, a in s.refresh_tokens.items() if a not in s.used_access_tokens}
                s.refresh_tokens = keep
                return jsonify(self._issue(s, True))
        return jsonify({"error": "unsupported_grant_type"}), 400

    # -- GraphQL ----------------------------------------------------------------------------------------
    def _graphql(self, domain: str):
        query_body = request.get_json(silent=True) or {}
        query = query_body.get("query", "")
        variables = query_body.get("variables") or {}
        with self.lock:
            self.counts["graphql"] += 1
            hits = [f for f in self.faults if f.hit(query)]
        for f in hits:
            if f.latency_s:
                time.sleep(f.latency_s)
            if f.status:
                return jsonify({"errors": "injected"}), f.status
            if f.throttle:
                return jsonify({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                                "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": None}}})
        token = request.headers.get("X-Shopify-Access-Token", "")
        with self.lock:
            s = self.shop(domain)
            if not token or token != s.access_token or s.access_expires <= time.time():
                return jsonify({"errors": "[API] Invalid API key or access token"}), 401
            s.used_access_tokens.add(token)
            s.refresh_tokens = {r: a for r, a in s.refresh_tokens.items() if a == token}
            self._host_url = request.host_url.rstrip("/")
            data = self._execute(s, query, variables)
        return jsonify({"data": data, "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": 10,
                        "throttleStatus": {"maximumAvailable": 2000, "currentlyAvailable": 1990,
                                           "restoreRate": 100}}}})

    # -- bulk operations ----------------------------------------------------------------------------
    def _run_bulk_query(self, s: ShopState) -> dict[str, Any]:
        running = [op for op in self.bulk_operations.values()
                   if op["shop"] == s.domain and op["status"] in ("CREATED", "RUNNING")]
        if running:
            return {"bulkOperation": None, "userErrors": [{"field": ["query"], "message":
                    f"A bulk query operation for this app and shop is already in progress: {running[0]['id']}."}]}
        gid = f"gid://shopify/BulkOperation/{len(self.bulk_operations) + 1}"
        op = {"id": gid, "shop": s.domain, "status": "RUNNING", "errorCode": None, "objectCount": "0",
              "url": None, "partialDataUrl": None, "createdAt": _now_iso(), "completedAt": None}
        self.bulk_operations[gid] = op
        fail = self.bulk_failures > 0
        self.bulk_failures -= fail
        threading.Thread(target=self._finish_bulk, args=(s, op, fail, self._host_url), daemon=True).start()
        return {"bulkOperation": _public(op), "userErrors": []}

    def _finish_bulk(self, s: ShopState, op: dict[str, Any], fail: bool, host_url: str) -> None:
        time.sleep(self.bulk_delay_s)
        with self.lock:
            if fail:
                op.update(status="FAILED", errorCode="INTERNAL_SERVER_ERROR", completedAt=_now_iso())
                return
            customers = list(s.customers.values())
        name = f"{uuid.uuid4().hex}.jsonl"
        with open(os.path.join(self.bulk_dir, name), "w", encoding="utf-8") as out:
            for c in customers:
                line = {"id": c["id"], **{k: c.get(k) for k in (
                    "email", "verifiedEmail", "firstName", "lastName", "phone", "defaultAddress", "updatedAt")}}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        with self.lock:
            op.update(status="COMPLETED", objectCount=str(len(customers)), completedAt=_now_iso(),
                      url=f"{host_url}/_bulk/{name}" if customers else None)

    def _execute(self, s: ShopState, query: str, v: dict[str, Any]) -> dict[str, Any]:
        def arg(field: str, name: str, default: Any = None) -> Any:
            """The value bound to `field(name: $var)` — clients choose their own variable names."""
            match = re.search(rf"\b{field}\s*\([^)]*\b{name}\s*:\s*(?:\$(\w+)|\"([^\"]*)\")", query)
            if not match:
                return default
            return v.get(match.group(1), default) if match.group(1) else match.group(2)

        if "bulkOperationRunQuery" in query:
            return {"bulkOperationRunQuery": self._run_bulk_query(s)}
        if "currentBulkOperation" in query:
            ops = [op for op in self.bulk_operations.values() if op["shop"] == s.domain]
            return {"currentBulkOperation": _public(ops[-1]) if ops else None}
        if re.search(r"\bnode\s*\(", query):
            op = self.bulk_operations.get(arg("node", "id"))
            return {"node": _public(op) if op and op["shop"] == s.domain else None}
        if "discountCodeBasicCreate" in query:
            return {"discountCodeBasicCreate": self._create_discount(s, arg("discountCodeBasicCreate",
                                                                            "basicCodeDiscount"))}
        if "discountCodeDelete" in query:
            gid = arg("discountCodeDelete", "id")
            found = s.discounts.pop(gid, None)
            return {"discountCodeDelete": {"deletedCodeDiscountId": gid if found else None,
                                           "userErrors": [] if found else [
                                               {"field": ["id"], "code": "NOT_FOUND", "message": "not found"}]}}
        for mutation, status in (("discountCodeDeactivate", "EXPIRED"), ("discountCodeActivate", "ACTIVE")):
            if mutation in query:
                gid = arg(mutation, "id")
                d = s.discounts.get(gid)
                if d:
                    d["status"] = status
                return {mutation: {"codeDiscountNode": {"id": gid} if d else None,
                                   "userErrors": [] if d else [
                                       {"field": ["id"], "code": "NOT_FOUND", "message": "not found"}]}}
        if "codeDiscountNodeByCode" in query:
            code = arg("codeDiscountNodeByCode", "code")
            d = next((d for d in s.discounts.values() if d["code"] == code), None)
            return {"codeDiscountNodeByCode": {"id": d["id"], "codeDiscount": {
                "status": d["status"], "asyncUsageCount": d.get("used", 0)}} if d else None}
        if "metafieldsSet" in query:
            return {"metafieldsSet": self._metafields_set(s, arg("metafieldsSet", "metafields"))}
        if re.search(r"\bnodes\s*\(", query):
            ids = arg("nodes", "ids", [])
            return {"nodes": [self._customer_node(s.customers.get(gid)) for gid in ids]}
        if re.search(r"\bcustomer\s*\(", query):
            gid = arg("customer", "id")
            c = s.customers.get(gid)
            if c is None:
                return {"customer": None}
            out = dict(c)
            namespace, key = arg("metafield", "namespace", "loyalty"), arg("metafield", "key", "coupons")
            mf = s.metafields.get((gid, namespace, key))
            out["metafield"] = {"value": mf["value"], "compareDigest": digest(mf["value"])} if mf else None
            return {"customer": out}
        if re.search(r"\bshop\s*\{", query):
            return {"shop": {"currencyCode": s.currency, "ianaTimezone": s.timezone}}
        raise ValueError("operation not emulated")

    @staticmethod
    def _customer_node(c: dict[str, Any] | None) -> dict[str, Any] | None:
        if c is None:
            return None  # Shopify answers null for an id it does not have (deleted, or another shop's)
        name = " ".join(p for p in (c.get("firstName"), c.get("lastName")) if p)
        email = (c.get("defaultEmailAddress") or {}).get("emailAddress")
        return {"id": c["id"], "legacyResourceId": c["legacyResourceId"], "displayName": name or email or ""}

    def _create_discount(self, s: ShopState, d: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for name in ("title", "code", "startsAt", "customerGets"):
            if not d.get(name):
                errors.append({"field": ["basicCodeDiscount", name], "code": "BLANK", "message": f"{name} is blank"})
        if not d.get("context") and not d.get("customerSelection"):
            errors.append({"field": ["basicCodeDiscount", "context"], "code": "BLANK", "message": "context is blank"})
        if any(x["code"] == d.get("code") for x in s.discounts.values()):
            errors.append({"field": ["basicCodeDiscount", "code"], "code": "TAKEN", "message": "Code must be unique."})
        if errors:
            return {"codeDiscountNode": None, "userErrors": errors}
        gid = f"gid://shopify/DiscountCodeNode/{len(s.discounts) + 1000 + int(time.time() * 1000) % 100000}"
        amount = d["customerGets"]["value"]["discountAmount"]["amount"]
        s.discounts[gid] = {"id": gid, "code": d["code"], "title": d["title"], "status": "ACTIVE",
                            "amount": str(amount), "usageLimit": d.get("usageLimit"),
                            "appliesOncePerCustomer": d.get("appliesOncePerCustomer"),
                            "customers": (d.get("context") or {}).get("customers", {}).get("add", []),
                            "startsAt": d["startsAt"], "endsAt": d.get("endsAt")}
        return {"codeDiscountNode": {"id": gid, "codeDiscount": {
            "title": d["title"], "status": "ACTIVE", "startsAt": d["startsAt"], "endsAt": d.get("endsAt"),
            "usageLimit": d.get("usageLimit"), "codes": {"nodes": [{"code": d["code"]}]}}}, "userErrors": []}

    def _metafields_set(self, s: ShopState, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        for m in inputs:  # atomic: check all first
            key = (m["ownerId"], m["namespace"], m["key"])
            current = s.metafields.get(key)
            if "compareDigest" in m:
                expected = m["compareDigest"]
                actual = digest(current["value"]) if current else None
                if expected != actual:
                    return {"metafields": [], "userErrors": [{"field": ["metafields", "0", "compareDigest"],
                                                              "code": "STALE_OBJECT",
                                                              "message": "The resource has been updated since it "
                                                                         "was loaded."}]}
        out = []
        for m in inputs:
            key = (m["ownerId"], m["namespace"], m["key"])
            s.metafields[key] = {"value": m["value"], "type": m["type"]}
            out.append({"key": m["key"], "namespace": m["namespace"], "value": m["value"],
                        "compareDigest": digest(m["value"])})
        return {"metafields": out, "userErrors": []}

    def create_app(self) -> Flask:
        app = Flask("shopify_emulator")

        @app.post("/<shop>/admin/oauth/access_token")
        def access_token(shop: str):
            return self._token(shop)

        @app.post("/<shop>/admin/api/<version>/graphql.json")
        def graphql(shop: str, version: str):
            return self._graphql(shop)

        @app.get("/_bulk/<name>")
        def bulk_file(name: str):
            path = os.path.join(self.bulk_dir, os.path.basename(name))
            if not os.path.exists(path):
                abort(404)
            return send_file(path, mimetype="application/jsonl")

        @app.post("/_emulator/bulk_failures")
        def bulk_failures():
            with self.lock:
                self.bulk_failures = int((request.get_json(force=True) or {}).get("count", 1))
            return jsonify({"bulk_failures": self.bulk_failures})

        @app.post("/_emulator/faults")
        def add_fault():
            self.add_fault(**(request.get_json(force=True) or {}))
            return jsonify({"faults": len(self.faults)})

        @app.delete("/_emulator/faults")
        def clear_faults():
            with self.lock:
                self.faults.clear()
            return jsonify({"faults": 0})

        @app.get("/_emulator/<shop>/state")
        def state(shop: str):
            with self.lock:
                s = self.shop(shop)
                return jsonify({"counts": self.counts, "discounts": list(s.discounts.values()),
                                "metafields": [{"owner": k[0], "namespace": k[1], "key": k[2], **v}
                                               for k, v in s.metafields.items()]})

        @app.post("/_emulator/<shop>/customers")
        def seed_customers(shop: str):
            for c in request.get_json(force=True):
                self.add_customer(shop, int(c.pop("id")), **c)
            return jsonify({"customers": len(self.shop(shop).customers)})

        @app.post("/_emulator/<shop>/profile")
        def profile(shop: str):
            body = request.get_json(force=True) or {}
            self.set_profile(shop, currency=body["currency"], timezone=body["timezone"])
            return jsonify({"currency": body["currency"], "timezone": body["timezone"]})

        @app.get("/_emulator/counts")
        def counts():
            return json.dumps(self.counts), 200, {"Content-Type": "application/json"}

        return app
