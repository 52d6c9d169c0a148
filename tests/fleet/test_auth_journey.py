"""A learner's account journey across real processes: auth, and ai-scoring trusting its tokens.

signup -> verification token read from the published event -> verify -> login -> ai-scoring
accepts the token (checked there against auth's JWKS) -> refresh -> reuse of a spent refresh
token revokes the family -> logout.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sonata_testing import ServiceProcess

sys.path.insert(0, str(Path(__file__).parent))

from auth_fleet_support import (
    PASSWORD,
    EventTap,
    login,
)

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def scoring(mongo_url: str, amqp_url: str, auth: ServiceProcess) -> Iterator[ServiceProcess]:
    env = {
        "ENVIRONMENT": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": f"scoring_authjourney_{uuid.uuid4().hex[:8]}",
        "AMQP_URL": amqp_url,
        "AUTH_JWKS_URL": f"{auth.base_url}/.well-known/jwks.json",
        "LOG_LEVEL": "WARNING",
    }
    proc = ServiceProcess("ai-scoring", "sonata_scoring.main:create_app", env).start()
    yield proc
    proc.stop()


@pytest.fixture
async def tap(amqp_url: str, auth: ServiceProcess) -> AsyncIterator[EventTap]:
    async with EventTap(amqp_url) as t:
        yield t


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_signup_to_logout_journey(
    auth: ServiceProcess, scoring: ServiceProcess, http: httpx.AsyncClient, tap: EventTap
) -> None:
    base = auth.base_url
    email = f"learner-{uuid.uuid4().hex[:8]}@example.com"

    r = await http.post(
        f"{base}/v1/signup",
        json={"email": email, "password": PASSWORD, "display_name": "Clara", "locale": "de"},
        headers={"X-Request-ID": "journey-signup-1"},
    )
    assert r.status_code == 202, r.text
    assert r.headers["X-Request-ID"] == "journey-signup-1"
    registered = await tap.wait_for("auth.user_registered.v1", lambda b: b["email"] == email)
    assert registered["display_name"] == "Clara"
    assert registered["locale"] == "de"
    verification = await tap.wait_for(
        "auth.email_verification_requested.v1", lambda b: b["email"] == email
    )
    # The request's correlation id travels in the event's envelope.
    assert verification["correlation_id"] == "journey-signup-1"
    assert verification["verify_url"].endswith(verification["token"])
    user_id = verification["user_id"]

    r = await http.post(f"{base}/v1/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 403
    assert r.json()["error"] == "email_not_verified"

    r = await http.post(f"{base}/v1/email/verify", json={"token": verification["token"]})
    assert r.status_code == 200, r.text
    r = await http.post(f"{base}/v1/email/verify", json={"token": verification["token"]})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_or_expired_token"

    first = await login(http, base, email)
    assert first["token_type"] == "Bearer"
    assert first["expires_in"] == 600
    me = await http.get(f"{base}/v1/me", headers=bearer(first["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user_id
    assert me.json()["email_verified"] is True
    assert me.json()["roles"] == ["student"]

    # Another service verifies the token on its own, against auth's JWKS.
    ent = await http.get(
        f"{scoring.base_url}/v1/entitlements/me", headers=bearer(first["access_token"])
    )
    assert ent.status_code == 200, ent.text
    assert ent.json()["user_id"] == user_id
    anonymous = await http.get(f"{scoring.base_url}/v1/entitlements/me")
    assert anonymous.status_code == 401

    r = await http.post(f"{base}/v1/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    ent = await http.get(
        f"{scoring.base_url}/v1/entitlements/me", headers=bearer(second["access_token"])
    )
    assert ent.status_code == 200

    # The spent token comes back: someone copied it. The whole family dies.
    r = await http.post(f"{base}/v1/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401
    assert r.json()["error"] == "refresh_token_reused"
    r = await http.post(f"{base}/v1/token/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_refresh_token"
    me = await http.get(f"{base}/v1/me", headers=bearer(second["access_token"]))
    assert me.status_code == 401

    third = await login(http, base, email)
    r = await http.post(f"{base}/v1/logout", headers=bearer(third["access_token"]))
    assert r.status_code == 204
    r = await http.post(f"{base}/v1/token/refresh", json={"refresh_token": third["refresh_token"]})
    assert r.status_code == 401
    me = await http.get(f"{base}/v1/me", headers=bearer(third["access_token"]))
    assert me.status_code == 401
    assert me.json()["error"] == "invalid_token"

    # The security events are in the user's export.
    fourth = await login(http, base, email)
    export = await http.get(f"{base}/v1/me/export", headers=bearer(fourth["access_token"]))
    assert export.status_code == 200
    events = [e["event"] for e in export.json()["audit_log"]]
    for expected in ("signup", "email_verified", "login_succeeded", "refresh_token_reused"):
        assert expected in events
    assert "logout" in events


async def test_jwks_publishes_the_signing_key(
    auth: ServiceProcess, http: httpx.AsyncClient
) -> None:
    r = await http.get(f"{auth.base_url}/.well-known/jwks.json")
    assert r.status_code == 200
    [key] = r.json()["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in key


async def test_api_is_documented(auth: ServiceProcess, http: httpx.AsyncClient) -> None:
    spec = (await http.get(f"{auth.base_url}/openapi.json")).json()
    for path in ("/v1/signup", "/v1/login", "/v1/token/refresh", "/v1/me", "/v1/logout"):
        assert path in spec["paths"]
    assert (await http.get(f"{auth.base_url}/docs")).status_code == 200
