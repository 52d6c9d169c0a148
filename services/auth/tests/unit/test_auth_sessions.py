"""Login, TOTP step-up, refresh rotation with reuse detection, logout: use cases with fakes."""

from __future__ import annotations

from dataclasses import replace

import pyotp
import pytest
from sonata_auth.domain.errors import (
    EmailNotVerifiedError,
    InvalidCredentialsError,
    InvalidOneTimeTokenError,
    InvalidRefreshTokenError,
    InvalidTokenError,
    InvalidTotpCodeError,
    RateLimitedError,
    RefreshTokenReusedError,
)
from sonata_auth.domain.model import AuditEvent, Role, TokenPair
from sonata_auth.service_layer import accounts, admin, sessions, totp
from sonata_contracts.auth import EmailVerificationRequested

PASSWORD = "correct horse battery"


async def _verified_user(world, email="ada@example.com"):
    await accounts.signup(world.deps, email, PASSWORD, "Ada", "en", "UTC", "10.0.0.1")
    event = world.uow.events(EmailVerificationRequested)[-1]
    await accounts.verify_email(world.deps, event.token, "10.0.0.1")
    return event.user_id


async def _login(world, email="ada@example.com") -> TokenPair:
    result = await sessions.login(world.deps, email, PASSWORD, "10.0.0.1")
    assert result.status == sessions.LoginStatus.OK
    assert result.tokens is not None
    return result.tokens


async def test_login_gives_tokens_that_authenticate(world):
    user_id = await _verified_user(world)
    tokens = await _login(world)
    claims = await sessions.authenticate(world.deps, tokens.access_token)
    assert claims.sub == user_id
    assert claims.roles == ("student",)
    assert tokens.expires_in == 600


async def test_wrong_password_and_unknown_account_look_the_same(world):
    await _verified_user(world)
    with pytest.raises(InvalidCredentialsError) as wrong:
        await sessions.login(world.deps, "ada@example.com", "not the password", "10.0.0.1")
    with pytest.raises(InvalidCredentialsError) as unknown:
        await sessions.login(world.deps, "nobody@example.com", PASSWORD, "10.0.0.1")
    assert (wrong.value.status, wrong.value.detail) == (unknown.value.status, unknown.value.detail)
    # The unknown account still paid for one password verification.
    assert world.hasher.dummy_calls == 1
    failed = [e for e in world.uow.store.audit if e.event == AuditEvent.LOGIN_FAILED]
    assert len(failed) == 2


async def test_unverified_email_cannot_log_in(world):
    await accounts.signup(world.deps, "bob@example.com", PASSWORD, None, "en", "UTC", None)
    with pytest.raises(EmailNotVerifiedError):
        await sessions.login(world.deps, "bob@example.com", PASSWORD, None)


async def test_login_is_rate_limited_per_account_whether_or_not_it_exists(world):
    for _ in range(5):
        with pytest.raises(InvalidCredentialsError):
            await sessions.login(world.deps, "ghost@example.com", "whatever pw", "10.0.0.9")
    with pytest.raises(RateLimitedError) as limited:
        await sessions.login(world.deps, "ghost@example.com", "whatever pw", "10.0.0.9")
    assert int(limited.value.headers["Retry-After"]) > 0
    world.clock.advance(seconds=61)
    with pytest.raises(InvalidCredentialsError):
        await sessions.login(world.deps, "ghost@example.com", "whatever pw", "10.0.0.9")


async def test_rate_limited_logins_are_in_the_audit_trail(world):
    user_id = await _verified_user(world)
    for email, ip in (("ada@example.com", "10.0.0.8"), ("ghost@example.com", "10.0.0.9")):
        for _ in range(5):
            with pytest.raises(InvalidCredentialsError):
                await sessions.login(world.deps, email, "not the password", ip)
        with pytest.raises(RateLimitedError):
            await sessions.login(world.deps, email, "not the password", ip)
    limited = [e for e in world.uow.store.audit if e.event == AuditEvent.LOGIN_RATE_LIMITED]
    assert [(e.user_id, e.ip, e.detail) for e in limited] == [
        (user_id, "10.0.0.8", {"email": "ada@example.com", "limited_by": "account"}),
        (None, "10.0.0.9", {"email": "ghost@example.com", "limited_by": "account"}),
    ]
    # the account's own trail shows it
    export = await accounts.export_account(world.deps, user_id)
    assert "login_rate_limited" in [e["event"] for e in export["audit_log"]]


async def test_refresh_rotates_and_reuse_revokes_the_family(world):
    await _verified_user(world)
    first = await _login(world)
    second = await sessions.refresh(world.deps, first.refresh_token, None)
    assert second.refresh_token != first.refresh_token
    third = await sessions.refresh(world.deps, second.refresh_token, None)

    with pytest.raises(RefreshTokenReusedError):
        await sessions.refresh(world.deps, first.refresh_token, None)
    # The newest token of the family is dead too, and so are its access tokens.
    with pytest.raises(InvalidRefreshTokenError):
        await sessions.refresh(world.deps, third.refresh_token, None)
    with pytest.raises(InvalidTokenError):
        await sessions.authenticate(world.deps, third.access_token)
    assert any(e.event == AuditEvent.REFRESH_REUSED for e in world.uow.store.audit)


async def test_reuse_in_one_family_leaves_other_sessions_alive(world):
    await _verified_user(world)
    phone = await _login(world)
    laptop = await _login(world)
    await sessions.refresh(world.deps, phone.refresh_token, None)
    with pytest.raises(RefreshTokenReusedError):
        await sessions.refresh(world.deps, phone.refresh_token, None)
    assert (await sessions.refresh(world.deps, laptop.refresh_token, None)).access_token


async def test_logout_ends_refresh_and_access(world):
    await _verified_user(world)
    tokens = await _login(world)
    claims = await sessions.authenticate(world.deps, tokens.access_token)
    await sessions.logout(world.deps, claims, None)
    with pytest.raises(InvalidRefreshTokenError):
        await sessions.refresh(world.deps, tokens.refresh_token, None)
    with pytest.raises(InvalidTokenError):
        await sessions.authenticate(world.deps, tokens.access_token)


async def test_refresh_family_expires_after_thirty_days(world):
    await _verified_user(world)
    tokens = await _login(world)
    world.clock.advance(days=31)
    with pytest.raises(InvalidRefreshTokenError):
        await sessions.refresh(world.deps, tokens.refresh_token, None)


async def test_access_token_expires_after_ten_minutes(world):
    await _verified_user(world)
    tokens = await _login(world)
    world.clock.advance(minutes=10, seconds=1)
    with pytest.raises(InvalidTokenError, match="expired"):
        await sessions.authenticate(world.deps, tokens.access_token)


async def _make_teacher(world, user_id):
    admin_id = await _verified_user(world, "root@example.com")
    root = await _login(world, "root@example.com")
    claims = await sessions.authenticate(world.deps, root.access_token)
    world.uow.store.users[admin_id].roles = [Role.ADMIN]
    as_admin = replace(claims, roles=("admin",))
    await admin.change_roles(world.deps, as_admin, user_id, [Role.TEACHER], None)


async def test_teacher_without_totp_must_enrol_before_getting_tokens(world):
    user_id = await _verified_user(world)
    await _make_teacher(world, user_id)
    result = await sessions.login(world.deps, "ada@example.com", PASSWORD, None)
    assert result.status == sessions.LoginStatus.TOTP_ENROLMENT_REQUIRED
    assert result.tokens is None
    assert result.challenge

    enrolment = await totp.start_enrolment(world.deps, enrolment_token=result.challenge)
    assert enrolment.otpauth_uri.startswith("otpauth://totp/Sonata:ada%40example.com?secret=")
    with pytest.raises(InvalidTotpCodeError):
        await totp.confirm_enrolment(world.deps, "000000", None, enrolment_token=result.challenge)
    code = pyotp.TOTP(enrolment.secret).at(world.clock.now())
    tokens = await totp.confirm_enrolment(world.deps, code, None, enrolment_token=result.challenge)
    assert tokens is not None
    claims = await sessions.authenticate(world.deps, tokens.access_token)
    assert claims.roles == ("teacher",)
    # The enrolment handle is spent.
    with pytest.raises(InvalidOneTimeTokenError):
        await totp.start_enrolment(world.deps, enrolment_token=result.challenge)


async def test_totp_step_up_accepts_a_code_once(world):
    user_id = await _verified_user(world)
    claims = await sessions.authenticate(world.deps, (await _login(world)).access_token)
    enrolment = await totp.start_enrolment(world.deps, user_id=claims.sub)
    await totp.confirm_enrolment(
        world.deps, pyotp.TOTP(enrolment.secret).at(world.clock.now()), None, user_id=user_id
    )
    world.clock.advance(seconds=30)

    step = await sessions.login(world.deps, "ada@example.com", PASSWORD, None)
    assert step.status == sessions.LoginStatus.TOTP_REQUIRED
    assert step.tokens is None
    code = pyotp.TOTP(enrolment.secret).at(world.clock.now())
    tokens = await sessions.login_totp(world.deps, step.challenge, code, None)
    assert (await sessions.authenticate(world.deps, tokens.access_token)).sub == user_id

    again = await sessions.login(world.deps, "ada@example.com", PASSWORD, None)
    with pytest.raises(InvalidTotpCodeError):
        await sessions.login_totp(world.deps, again.challenge, code, None)


async def test_totp_challenge_dies_after_five_wrong_codes(world):
    user_id = await _verified_user(world)
    enrolment = await totp.start_enrolment(world.deps, user_id=user_id)
    secret = pyotp.TOTP(enrolment.secret)
    await totp.confirm_enrolment(world.deps, secret.at(world.clock.now()), None, user_id=user_id)
    world.clock.advance(seconds=90)
    step = await sessions.login(world.deps, "ada@example.com", PASSWORD, None)
    for _ in range(5):
        with pytest.raises(InvalidTotpCodeError):
            await sessions.login_totp(world.deps, step.challenge, "123456", None)
    with pytest.raises(InvalidOneTimeTokenError):
        await sessions.login_totp(world.deps, step.challenge, secret.at(world.clock.now()), None)
