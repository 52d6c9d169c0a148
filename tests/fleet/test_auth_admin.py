"""Roles, TOTP for teachers and admins, key rotation, phone, reset and deletion, end to end.

The first admin is made by the operator command, as in production; everything after that
goes through the HTTP API, with the events read from the exchange.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from sonata_testing import ServiceProcess

sys.path.insert(0, str(Path(__file__).parent))

from auth_fleet_support import (
    PASSWORD,
    EventTap,
    login,
    signup_verified,
)

pytestmark = pytest.mark.fleet


@pytest.fixture
async def tap(amqp_url: str, auth: ServiceProcess) -> AsyncIterator[EventTap]:
    async with EventTap(amqp_url) as t:
        yield t


def operator(auth: ServiceProcess, *args: str) -> str:
    """The operator's command, run with the service's own environment."""
    done = subprocess.run(
        [sys.executable, "-m", "sonata_auth.cli", *args],
        env={**os.environ, **auth.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


async def _enrol(
    http: httpx.AsyncClient, base: str, challenge: str
) -> tuple[str, str, dict[str, Any]]:
    r = await http.post(f"{base}/v1/2fa/totp/enrol", json={"enrolment_token": challenge})
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    assert r.json()["otpauth_uri"].startswith("otpauth://totp/Sonata:")
    code = pyotp.TOTP(secret).now()
    r = await http.post(
        f"{base}/v1/2fa/totp/confirm", json={"code": code, "enrolment_token": challenge}
    )
    assert r.status_code == 200, r.text
    return secret, code, r.json()["tokens"]


async def test_admin_with_totp_changes_roles_and_rotates_the_key(
    auth: ServiceProcess, http: httpx.AsyncClient, tap: EventTap
) -> None:
    base = auth.base_url
    boss, learner = _email("boss"), _email("learner")
    await signup_verified(http, tap, base, boss)
    learner_id = (await signup_verified(http, tap, base, learner))["user_id"]
    learner_tokens = await login(http, base, learner)

    assert "roles admin" in operator(auth, "set-roles", boss, "admin")
    r = await http.post(f"{base}/v1/login", json={"email": boss, "password": PASSWORD})
    assert r.status_code == 200
    assert r.json()["status"] == "totp_enrolment_required"
    assert r.json()["access_token"] is None
    secret, spent, boss_tokens = await _enrol(http, base, r.json()["challenge"])

    # A student cannot touch roles; the admin can, and the change is published.
    r = await http.put(
        f"{base}/v1/admin/users/{learner_id}/roles",
        json={"roles": ["teacher"]},
        headers=bearer(learner_tokens["access_token"]),
    )
    assert r.status_code == 403
    r = await http.put(
        f"{base}/v1/admin/users/{learner_id}/roles",
        json={"roles": ["teacher"]},
        headers=bearer(boss_tokens["access_token"]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["roles"] == ["teacher"]
    assert r.json()["totp_required"] is True
    changed = await tap.wait_for("auth.user_role_changed.v1", lambda b: b["user_id"] == learner_id)
    assert changed["old_roles"] == ["student"]
    assert changed["new_roles"] == ["teacher"]
    boss_id = jwt.decode(boss_tokens["access_token"], options={"verify_signature": False})["sub"]
    assert changed["changed_by"] == boss_id

    # The learner's sessions carried the old role: they are over, and a teacher must enrol.
    r = await http.post(
        f"{base}/v1/token/refresh", json={"refresh_token": learner_tokens["refresh_token"]}
    )
    assert r.status_code == 401
    r = await http.post(f"{base}/v1/login", json={"email": learner, "password": PASSWORD})
    assert r.json()["status"] == "totp_enrolment_required"

    r = await http.get(
        f"{base}/v1/admin/users/{learner_id}/audit", headers=bearer(boss_tokens["access_token"])
    )
    assert "role_changed" in [e["event"] for e in r.json()]

    # The admin's next login steps up with a code from the next time step (the enrolment
    # spent the current one, and a code is never accepted twice).
    r = await http.post(f"{base}/v1/login", json={"email": boss, "password": PASSWORD})
    assert r.json()["status"] == "totp_required"
    challenge = r.json()["challenge"]
    r = await http.post(f"{base}/v1/login/totp", json={"challenge": challenge, "code": spent})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_totp_code"
    next_code = pyotp.TOTP(secret).at(time.time() + 30)
    r = await http.post(f"{base}/v1/login/totp", json={"challenge": challenge, "code": next_code})
    assert r.status_code == 200, r.text

    old_kid = jwt.get_unverified_header(boss_tokens["access_token"])["kid"]
    r = await http.post(f"{base}/v1/admin/keys/rotate", headers=bearer(boss_tokens["access_token"]))
    assert r.status_code == 200
    new_kid = r.json()["kid"]
    assert new_kid != old_kid
    kids = {k["kid"] for k in (await http.get(f"{base}/.well-known/jwks.json")).json()["keys"]}
    assert kids == {old_kid, new_kid}
    # Tokens signed before the rotation keep working until they expire.
    assert (await http.get(f"{base}/v1/me", headers=bearer(boss_tokens["access_token"]))).is_success
    r = await http.post(
        f"{base}/v1/token/refresh", json={"refresh_token": boss_tokens["refresh_token"]}
    )
    assert jwt.get_unverified_header(r.json()["access_token"])["kid"] == new_kid
    assert "new signing key" in operator(auth, "rotate-key")


async def test_phone_verification_through_the_sms_event(
    auth: ServiceProcess, http: httpx.AsyncClient, tap: EventTap
) -> None:
    base = auth.base_url
    email = _email("phone")
    await signup_verified(http, tap, base, email)
    h = bearer((await login(http, base, email))["access_token"])
    r = await http.post(f"{base}/v1/me/phone", json={"phone": "+441632960961"}, headers=h)
    assert r.status_code == 202, r.text
    sms = await tap.wait_for(
        "auth.phone_verification_requested.v1", lambda b: b["phone"] == "+441632960961"
    )
    wrong = "000000" if sms["code"] != "000000" else "111111"
    r = await http.post(f"{base}/v1/me/phone/verify", json={"code": wrong}, headers=h)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_phone_code"
    r = await http.post(f"{base}/v1/me/phone/verify", json={"code": sms["code"]}, headers=h)
    assert r.status_code == 200
    me = (await http.get(f"{base}/v1/me", headers=h)).json()
    assert me["phone"] == "+441632960961"
    assert me["phone_verified"] is True


async def test_password_reset_then_account_deletion(
    auth: ServiceProcess, http: httpx.AsyncClient, tap: EventTap
) -> None:
    base = auth.base_url
    email = _email("reset")
    user_id = (await signup_verified(http, tap, base, email))["user_id"]
    before = await login(http, base, email)

    unknown = await http.post(f"{base}/v1/password/reset", json={"email": _email("nobody")})
    r = await http.post(f"{base}/v1/password/reset", json={"email": email})
    assert r.status_code == unknown.status_code == 202
    assert r.json() == unknown.json()
    reset = await tap.wait_for("auth.password_reset_requested.v1", lambda b: b["email"] == email)
    new_password = "a different long secret"
    r = await http.post(
        f"{base}/v1/password/reset/confirm",
        json={"token": reset["token"], "new_password": new_password},
    )
    assert r.status_code == 204, r.text
    r = await http.post(f"{base}/v1/token/refresh", json={"refresh_token": before["refresh_token"]})
    assert r.status_code == 401
    r = await http.post(f"{base}/v1/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 401
    r = await http.post(f"{base}/v1/login", json={"email": email, "password": new_password})
    assert r.status_code == 200
    h = bearer(r.json()["access_token"])

    export = await http.get(f"{base}/v1/me/export", headers=h)
    assert export.json()["user"]["id"] == user_id
    assert "password_changed" in [e["event"] for e in export.json()["audit_log"]]
    assert reset["token"] not in export.text

    r = await http.delete(f"{base}/v1/me", headers=h)
    assert r.status_code == 204
    deleted = await tap.wait_for("auth.user_deleted.v1", lambda b: b["user_id"] == user_id)
    assert deleted["user_id"] == user_id
    assert (await http.get(f"{base}/v1/me", headers=h)).status_code == 401
    r = await http.post(f"{base}/v1/login", json={"email": email, "password": new_password})
    assert r.status_code == 401
