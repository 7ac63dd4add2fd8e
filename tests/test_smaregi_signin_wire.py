"""Smaregi ID's sign-in wire format (code exchange + user info), from a recorded interaction
(tests/cassettes/README.md)."""
from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from app import migrate
from app.smaregi.signin import SignInRefused, code_challenge

from .conftest import CONTRACT
from .vcr_support import RECORDING, cassettes

ID_HOST = "https://id.smaregi.dev"
REDIRECT = "https://pointbridge.example/smaregi/connect/callback"
VERIFIER = "recorded-verifier-" + "v" * 40
CODE = "recorded-code-0001"


@pytest.fixture
def wire(tmp_path, make_services, request):
    url = f"sqlite:///{tmp_path / 'wire.db'}"
    migrate.upgrade(url)
    if RECORDING:
        em, live = request.getfixturevalue("smaregi_em")
        services = make_services(url, smaregi_url=live)
        em.issue_code(CONTRACT, client_id=services.config.smaregi_client_id, redirect_uri=REDIRECT,
                      code_challenge=code_challenge(VERIFIER), code=CODE)
        origins = {f"{live}/": f"{ID_HOST}/"}
    else:
        services = make_services(url)
        services.smaregi.id_base = ID_HOST
        origins = {}
    return services, cassettes("smaregi", origins)


def test_code_exchange_then_user_info_names_the_contract(wire):
    services, cassette = wire
    with cassette("sign_in_code_exchange_and_userinfo") as c:
        identity = services.smaregi_sign_in.identify(code=CODE, verifier=VERIFIER, redirect_uri=REDIRECT)
        with pytest.raises(SignInRefused):  # a code works once
            services.smaregi_sign_in.identify(code=CODE, verifier=VERIFIER, redirect_uri=REDIRECT)
    token, userinfo, again = c.requests
    assert again.uri == token.uri
    assert (token.method, token.uri) == ("POST", f"{ID_HOST}/authorize/token")
    assert parse_qs(token.body.decode()) == {"grant_type": ["authorization_code"], "code": [CODE],
                                             "redirect_uri": [REDIRECT], "code_verifier": [VERIFIER]}
    assert token.headers["Authorization"] == "SCRUBBED"  # Basic client_id:client_secret, as for the app token
    assert (userinfo.method, userinfo.uri) == ("GET", f"{ID_HOST}/userinfo")
    assert (identity.contract_id, identity.is_owner) == (CONTRACT, True)
    assert [r["status"]["code"] for r in c.responses] == [200, 200, 400]


def test_the_authorize_url_carries_pkce_and_the_registered_redirect(wire):
    services, _ = wire
    url = services.smaregi_sign_in.authorize_url(state="s" * 43, verifier=VERIFIER, redirect_uri=REDIRECT)
    query = parse_qs(url.split("?", 1)[1])
    assert url.startswith(f"{services.smaregi.id_base}/authorize?")
    assert query == {"response_type": ["code"], "client_id": [services.config.smaregi_client_id],
                     "scope": ["openid"], "state": ["s" * 43], "redirect_uri": [REDIRECT],
                     "code_challenge": [code_challenge(VERIFIER)], "code_challenge_method": ["S256"]}
