"""Signup, verification, reset, phone, roles, deletion and export: use cases with fakes."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from sonata_auth.domain.errors import (
    ForbiddenError,
    InvalidCredentialsError,
    InvalidOneTimeTokenError,
    InvalidPhoneCodeError,
    InvalidRefreshTokenError,
    RateLimitedError,
    TooManyAttemptsError,
    UnprocessableError,
    WeakPasswordError,
)
from sonata_auth.domain.model import AuditEvent, Role
from sonata_auth.service_layer import accounts, admin, sessions
from sonata_contracts.auth import (
    EmailVerificationRequested,
    PasswordResetRequested,
    PhoneVerificationRequested,
    UserDeleted,
    UserRegistered,
    UserRoleChanged,
)

PASSWORD = "correct horse battery"


async def _signup(world, email="ada@example.com"):
    await accounts.signup(world.deps, email, PASSWORD, "Ada", "fr", "Europe/Paris", "10.0.0.1")
    return world.uow.events(EmailVerificationRequested)[-1]


async def _session(world, email="ada@example.com"):
    event = await _signup(world, email)
    await accounts.verify_email(world.deps, event.token, None)
    result = await sessions.login(world.deps, email, PASSWORD, None)
    assert result.tokens is not None
    return await sessions.authenticate(world.deps, result.tokens.access_token), result.tokens


async def test_signup_publishes_registration_and_verification_in_one_commit(world):
    event = await _signup(world)
    registered = world.uow.events(UserRegistered)
    assert [r.user_id for r in registered] == [event.user_id]
    assert registered[0].locale == "fr"
    assert registered[0].roles == ["student"]
    assert event.verify_url.endswith(f"token={event.token}")
    stored = world.uow.store.users[event.user_id]
    assert stored.password_hash != PASSWORD
    assert not stored.email_verified
    # Only the hash of the emailed token is kept.
    assert all(s.secret_hash != event.token for s in world.uow.store.secrets)


async def test_signup_with_a_taken_address_reveals_nothing_and_creates_nothing(world):
    first = await _signup(world)
    await accounts.verify_email(world.deps, first.token, None)
    before = len(world.uow.published)
    await accounts.signup(world.deps, "ADA@example.com ", PASSWORD, None, "en", "UTC", None)
    assert len(world.uow.store.users) == 1
    assert len(world.uow.published) == before


async def test_weak_password_is_refused_before_anything_is_stored(world):
    with pytest.raises(WeakPasswordError):
        await accounts.signup(world.deps, "ada@example.com", "short", None, "en", "UTC", None)
    with pytest.raises(WeakPasswordError):
        await accounts.signup(
            world.deps, "ada@example.com", "aaaaaaaaaaaa", None, "en", "UTC", None
        )
    assert world.uow.store.users == {}
    assert world.uow.published == []


async def test_verification_token_works_once(world):
    event = await _signup(world)
    await accounts.verify_email(world.deps, event.token, None)
    assert world.uow.store.users[event.user_id].email_verified
    with pytest.raises(InvalidOneTimeTokenError):
        await accounts.verify_email(world.deps, event.token, None)


async def test_verification_token_expires(world):
    event = await _signup(world)
    world.clock.advance(hours=25)
    with pytest.raises(InvalidOneTimeTokenError):
        await accounts.verify_email(world.deps, event.token, None)


async def test_password_reset_changes_the_password_and_ends_sessions(world):
    _, tokens = await _session(world)
    await accounts.request_password_reset(world.deps, "ada@example.com", "10.0.0.2")
    reset = world.uow.events(PasswordResetRequested)[-1]
    await accounts.reset_password(world.deps, reset.token, "a brand new secret", None)

    with pytest.raises(InvalidRefreshTokenError):
        await sessions.refresh(world.deps, tokens.refresh_token, None)
    with pytest.raises(InvalidCredentialsError):
        await sessions.login(world.deps, "ada@example.com", PASSWORD, None)
    assert (await sessions.login(world.deps, "ada@example.com", "a brand new secret", None)).tokens
    with pytest.raises(InvalidOneTimeTokenError):
        await accounts.reset_password(world.deps, reset.token, "yet another secret", None)
    assert any(e.event == AuditEvent.PASSWORD_CHANGED for e in world.uow.store.audit)


async def test_reset_for_unknown_address_publishes_nothing_but_is_limited_alike(world):
    await accounts.request_password_reset(world.deps, "ghost@example.com", "10.0.0.3")
    await accounts.request_password_reset(world.deps, "ghost@example.com", "10.0.0.3")
    assert world.uow.events(PasswordResetRequested) == []
    with pytest.raises(RateLimitedError):
        await accounts.request_password_reset(world.deps, "ghost@example.com", "10.0.0.3")


async def test_reset_answers_at_one_floor_for_known_and_unknown_addresses(world):
    await _signup(world)  # ada@example.com
    floor = world.deps.policy.reset_answer_floor_s
    took = {}
    for email in ("ada@example.com", "ghost@example.com"):
        start = time.perf_counter()
        await accounts.request_password_reset(world.deps, email, "10.0.0.4")
        took[email] = time.perf_counter() - start
    assert [e.email for e in world.uow.events(PasswordResetRequested)] == ["ada@example.com"]
    assert all(floor <= t < floor + 0.04 for t in took.values()), took


async def test_phone_verification_with_limited_attempts(world):
    claims, _ = await _session(world)
    with pytest.raises(UnprocessableError):
        await accounts.request_phone_verification(world.deps, claims.sub, "0612345678", None)
    await accounts.request_phone_verification(world.deps, claims.sub, "+33612345678", None)
    sms = world.uow.events(PhoneVerificationRequested)[-1]
    assert sms.phone == "+33612345678"
    assert len(sms.code) == 6
    assert all(s.secret_hash != sms.code for s in world.uow.store.secrets)

    wrong = "000000" if sms.code != "000000" else "111111"
    for _ in range(5):
        with pytest.raises(InvalidPhoneCodeError):
            await accounts.confirm_phone(world.deps, claims.sub, wrong, None)
    with pytest.raises(TooManyAttemptsError):
        await accounts.confirm_phone(world.deps, claims.sub, sms.code, None)

    await accounts.request_phone_verification(world.deps, claims.sub, "+33612345678", None)
    fresh = world.uow.events(PhoneVerificationRequested)[-1]
    assert await accounts.confirm_phone(world.deps, claims.sub, fresh.code, None) == "+33612345678"
    user = world.uow.store.users[claims.sub]
    assert user.phone == "+33612345678"
    assert user.phone_verified


async def test_only_admins_change_roles_and_the_change_is_published(world):
    student, _ = await _session(world)
    boss, _ = await _session(world, "boss@example.com")
    with pytest.raises(ForbiddenError):
        await admin.change_roles(world.deps, boss, student.sub, [Role.TEACHER], None)

    as_admin = replace(boss, roles=("admin",))
    user = await admin.change_roles(
        world.deps, as_admin, student.sub, [Role.TEACHER, Role.PARENT], "10.0.0.4"
    )
    assert user.roles == [Role.PARENT, Role.TEACHER]
    [event] = world.uow.events(UserRoleChanged)
    assert (event.old_roles, event.new_roles) == (["student"], ["parent", "teacher"])
    assert event.changed_by == boss.sub
    with pytest.raises(UnprocessableError):
        await admin.change_roles(world.deps, as_admin, student.sub, [], None)


async def test_deletion_erases_the_account_and_publishes_it(world):
    claims, tokens = await _session(world)
    bystander, _ = await _session(world, "bob@example.com")
    await accounts.delete_account(world.deps, claims.sub)
    assert claims.sub not in world.uow.store.users
    assert [e.user_id for e in world.uow.events(UserDeleted)] == [claims.sub]
    # the outbox keeps no event naming them but the deletion itself; others' stay
    naming = [type(e).__name__ for e in world.uow.published if claims.sub in e.to_json().decode()]
    assert naming == ["UserDeleted"]
    assert [e.email for e in world.uow.events(UserRegistered)] == ["bob@example.com"]
    with pytest.raises(InvalidRefreshTokenError):
        await sessions.refresh(world.deps, tokens.refresh_token, None)
    with pytest.raises(InvalidCredentialsError):
        await sessions.login(world.deps, "ada@example.com", PASSWORD, None)
    # Signing up again with the same address starts a new account.
    await _signup(world)
    emails = sorted(u.email for u in world.uow.store.users.values())
    assert emails == ["ada@example.com", "bob@example.com"]
    assert bystander.sub in world.uow.store.users


async def test_deletion_leaves_no_address_or_ip_in_the_audit_trail(world):
    with pytest.raises(InvalidCredentialsError):
        await sessions.login(world.deps, "ada@example.com", "before signing up", "10.0.0.9")
    claims, _ = await _session(world)
    with pytest.raises(InvalidCredentialsError):
        await sessions.login(world.deps, "ada@example.com", "wrong again", "10.0.0.7")
    await accounts.delete_account(world.deps, claims.sub)
    trail = world.uow.store.audit
    assert AuditEvent.ACCOUNT_DELETED in [e.event for e in trail if e.user_id == claims.sub]
    assert AuditEvent.LOGIN_FAILED in [e.event for e in trail if e.user_id == claims.sub]
    assert "ada@example.com" not in repr(trail)
    assert not [e.ip for e in trail if e.ip is not None]


async def test_export_holds_the_users_data_and_no_secrets(world):
    claims, _ = await _session(world)
    data = await accounts.export_account(world.deps, claims.sub)
    assert data["user"]["email"] == "ada@example.com"
    assert data["user"]["has_password"] is True
    assert len(data["sessions"]) == 1
    assert {"signup", "email_verified", "login_succeeded"} <= {
        e["event"] for e in data["audit_log"]
    }
    text = repr(data)
    assert "password_hash" not in text
    assert "sha256$" not in text


async def test_a_failed_use_case_commits_nothing(world):
    claims, _ = await _session(world)
    published = len(world.uow.published)
    with pytest.raises(ForbiddenError):
        await admin.change_roles(world.deps, claims, claims.sub, [Role.ADMIN], None)
    assert world.uow.store.users[claims.sub].roles == [Role.STUDENT]
    assert len(world.uow.published) == published
