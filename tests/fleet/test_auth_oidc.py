"""OAuth/OIDC login through the real Authlib client inside auth, against a local provider."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sonata_testing import ServiceProcess

sys.path.insert(0, str(Path(__file__).parent))

from auth_fleet_support import (
    EventTap,
    login,
    signup_verified,
    start_auth,
    stop_and_check_log,
)
from auth_oidc_provider import LocalOidcProvider

pytestmark = pytest.mark.fleet

APP_CALLBACK = "http://127.0.0.1:8080/oauth/callback"
OTHER_CALLBACK = "http://127.0.0.1:8080/oauth/callback-2"


@pytest.fixture(scope="module")
def idp() -> Iterator[LocalOidcProvider]:
    provider = LocalOidcProvider(
        client_id="sonata-web",
        client_secret="idp-client-secret-9d2e",
        redirect_uris=[APP_CALLBACK, OTHER_CALLBACK],
    ).start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def auth(mongo_url: str, amqp_url: str, idp: LocalOidcProvider) -> Iterator[ServiceProcess]:
    providers = [
        {
            "name": "acme",
            "issuer": idp.issuer,
            "client_id": idp.client_id,
            "client_secret": idp.client_secret,
        }
    ]
    proc = start_auth(
        mongo_url,
        amqp_url,
        {
            "OIDC_PROVIDERS": json.dumps(providers),
            "OAUTH_REDIRECT_URIS": json.dumps([APP_CALLBACK, OTHER_CALLBACK]),
        },
    )
    yield proc
    stop_and_check_log(proc)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def _to_provider_and_back(
    http: httpx.AsyncClient, auth: ServiceProcess, redirect_uri: str = APP_CALLBACK
) -> dict[str, str]:
    """Start at auth, follow the browser's redirects; returns the code and state it lands with."""
    r = await http.get(
        f"{auth.base_url}/v1/oauth/acme/authorize", params={"redirect_uri": redirect_uri}
    )
    assert r.status_code == 302, r.text
    r = await http.get(r.headers["location"])
    assert r.status_code == 302, r.text
    landing = r.headers["location"]
    assert landing.startswith(redirect_uri + "?")
    return _query(landing)


def _user(email: str, verified: bool = True) -> dict[str, object]:
    return {
        "sub": f"idp-{uuid.uuid4().hex[:10]}",
        "email": email,
        "email_verified": verified,
        "name": "Robin Organ",
    }


async def _callback(
    http: httpx.AsyncClient, auth: ServiceProcess, back: dict[str, str], redirect_uri: str
) -> httpx.Response:
    return await http.post(
        f"{auth.base_url}/v1/oauth/acme/callback",
        json={"code": back["code"], "state": back["state"], "redirect_uri": redirect_uri},
    )


async def test_oidc_login_creates_then_reuses_the_account(
    auth: ServiceProcess, idp: LocalOidcProvider, http: httpx.AsyncClient
) -> None:
    email = f"oidc-{uuid.uuid4().hex[:8]}@example.com"
    idp.user = _user(email)
    back = await _to_provider_and_back(http, auth)
    sent = idp.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256"
    assert sent["redirect_uri"] == APP_CALLBACK
    assert sent["nonce"]
    assert sent["state"] == back["state"]
    assert "openid" in sent["scope"].split()

    r = await _callback(http, auth, back, APP_CALLBACK)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    # The token exchange proved possession of the PKCE verifier.
    assert idp.token_requests[-1]["code_verifier"]
    me = await http.get(
        f"{auth.base_url}/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["email_verified"] is True
    first_id = me.json()["id"]

    back = await _to_provider_and_back(http, auth)
    r = await _callback(http, auth, back, APP_CALLBACK)
    assert r.status_code == 200, r.text
    me = await http.get(
        f"{auth.base_url}/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.json()["id"] == first_id


async def test_oidc_links_to_a_verified_password_account(
    auth: ServiceProcess, idp: LocalOidcProvider, http: httpx.AsyncClient, amqp_url: str
) -> None:
    email = f"linked-{uuid.uuid4().hex[:8]}@example.com"
    async with EventTap(amqp_url) as tap:
        verification = await signup_verified(http, tap, auth.base_url, email)
    idp.user = _user(email.upper())
    back = await _to_provider_and_back(http, auth)
    r = await _callback(http, auth, back, APP_CALLBACK)
    assert r.status_code == 200, r.text
    me = await http.get(
        f"{auth.base_url}/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.json()["id"] == verification["user_id"]
    # The password still works too: linking added a way in, it took none away.
    await login(http, auth.base_url, email)


async def test_a_wrong_state_is_refused(
    auth: ServiceProcess, idp: LocalOidcProvider, http: httpx.AsyncClient
) -> None:
    idp.user = _user(f"state-{uuid.uuid4().hex[:8]}@example.com")
    back = await _to_provider_and_back(http, auth)
    forged = {**back, "state": "an-attacker-supplied-state-value"}
    r = await _callback(http, auth, forged, APP_CALLBACK)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_oauth_state"
    # The genuine state is single use.
    assert (await _callback(http, auth, back, APP_CALLBACK)).status_code == 200
    replay = await _callback(http, auth, back, APP_CALLBACK)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_oauth_state"


async def test_a_wrong_nonce_in_the_id_token_is_refused(
    auth: ServiceProcess, idp: LocalOidcProvider, http: httpx.AsyncClient
) -> None:
    idp.user = _user(f"nonce-{uuid.uuid4().hex[:8]}@example.com")
    back = await _to_provider_and_back(http, auth)
    idp.nonce_override = "a-nonce-from-another-login"
    try:
        r = await _callback(http, auth, back, APP_CALLBACK)
    finally:
        idp.nonce_override = None
    assert r.status_code == 401
    assert r.json()["error"] == "oauth_failed"
    assert "nonce" in r.json()["detail"]


async def test_a_mismatched_redirect_uri_is_refused(
    auth: ServiceProcess, idp: LocalOidcProvider, http: httpx.AsyncClient
) -> None:
    for near_miss in (
        APP_CALLBACK + "/",
        APP_CALLBACK + "?next=/admin",
        APP_CALLBACK.replace("127.0.0.1", "localhost"),
        "https://evil.example/oauth/callback",
    ):
        r = await http.get(
            f"{auth.base_url}/v1/oauth/acme/authorize", params={"redirect_uri": near_miss}
        )
        assert r.status_code == 400, near_miss
        assert r.json()["error"] == "redirect_uri_mismatch"

    idp.user = _user(f"redirect-{uuid.uuid4().hex[:8]}@example.com")
    back = await _to_provider_and_back(http, auth, APP_CALLBACK)
    # Both are registered, but the login started with the other one.
    r = await _callback(http, auth, back, OTHER_CALLBACK)
    assert r.status_code == 400
    assert r.json()["error"] == "redirect_uri_mismatch"


async def test_unknown_provider_is_a_404(auth: ServiceProcess, http: httpx.AsyncClient) -> None:
    r = await http.get(
        f"{auth.base_url}/v1/oauth/nope/authorize", params={"redirect_uri": APP_CALLBACK}
    )
    assert r.status_code == 404
    assert r.json()["error"] == "unknown_provider"
    r = await http.get(f"{auth.base_url}/v1/oauth/providers")
    assert r.json() == ["acme"]
