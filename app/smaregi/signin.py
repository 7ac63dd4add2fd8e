"""Smaregi ID's authorization-code sign-in: the merchant's proof of which contract they hold.

Used once per connection, never for syncing (that uses the app token, client.py). The contract id
comes from user info (`contract.id`); nothing the browser sends names it.

The endpoint paths, the scope and PKCE are from third-party integrations (shared/reference/
smaregi.md §1.3, marked partly inferred); they live here as constants so a correction is one line.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import requests

from .errors import SmaregiError, SmaregiServerError, SmaregiTimeout, SmaregiUnreachable

if TYPE_CHECKING:
    from .client import Smaregi

log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/authorize"
TOKEN_PATH = "/authorize/token"
USERINFO_PATH = "/userinfo"
SCOPE = "openid"
TIMEOUT_S = 10.0
CONTRACT_ID = re.compile(r"[A-Za-z0-9_]{1,64}")


class SignInRefused(SmaregiError):
    """Smaregi did not confirm the sign-in (bad or used code, wrong verifier, no contract in user
    info). `reason` is a log code; nothing here carries a token."""

    def __init__(self, reason: str):
        super().__init__(0, "sign_in_refused", reason)
        self.reason = reason


@dataclass(frozen=True)
class SmaregiIdentity:
    """What Smaregi's user info says about the person who signed in."""

    contract_id: str
    user_id: str | None
    is_owner: bool


def code_challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class SmaregiSignIn:
    def __init__(self, smaregi: Smaregi):
        self.s = smaregi  # its id_base, app credentials and HTTP pool

    def authorize_url(self, *, state: str, verifier: str, redirect_uri: str) -> str:
        query = urlencode({"response_type": "code", "client_id": self.s.client_id, "scope": SCOPE,
                           "state": state, "redirect_uri": redirect_uri,
                           "code_challenge": code_challenge(verifier), "code_challenge_method": "S256"})
        return f"{self.s.id_base}{AUTHORIZE_PATH}?{query}"

    def identify(self, *, code: str, verifier: str, redirect_uri: str) -> SmaregiIdentity:
        """Exchange the code for a user token, then read user info with it. The token is used for
        this one read and never stored."""
        deadline = time.monotonic() + 2 * TIMEOUT_S
        resp = self._call("POST", TOKEN_PATH, deadline, auth=(self.s.client_id, self.s.client_secret),
                          data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                "code_verifier": verifier})
        _raise_for(resp, "token")
        token = _json(resp).get("access_token")
        if not isinstance(token, str) or not token:
            raise SignInRefused("token_missing")
        resp = self._call("GET", USERINFO_PATH, deadline, headers={"Authorization": f"Bearer {token}",
                                                                  "Accept": "application/json"})
        _raise_for(resp, "userinfo")
        info = _json(resp)
        contract = info.get("contract") if isinstance(info.get("contract"), dict) else {}
        contract_id = contract.get("id")
        if not isinstance(contract_id, str) or not CONTRACT_ID.fullmatch(contract_id):
            raise SignInRefused("userinfo_without_contract")
        user_id = contract.get("user_id", info.get("sub"))
        return SmaregiIdentity(contract_id, None if user_id is None else str(user_id),
                               contract.get("is_owner") in (True, "true", "1", 1))

    def _call(self, method: str, path: str, deadline: float, **kwargs) -> requests.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            raise SmaregiTimeout("no time left for the sign-in")
        try:
            return self.s.http.request(method, f"{self.s.id_base}{path}", timeout=(min(3.0, remaining),
                                                                                     min(TIMEOUT_S, remaining)),
                                       **kwargs)
        except requests.Timeout:
            raise SmaregiTimeout("sign-in request timed out") from None
        except requests.ConnectionError as exc:
            raise SmaregiUnreachable(type(exc).__name__) from None


def _raise_for(resp: requests.Response, step: str) -> None:
    if resp.status_code >= 500 or resp.status_code == 429:
        raise SmaregiServerError(resp.status_code, f"{step} unavailable")  # try again later: not a refusal
    if resp.status_code != 200:
        raise SignInRefused(f"{step}_http_{resp.status_code}")


def _json(resp: requests.Response) -> dict:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
