"""Pure rules: password policy, phone format, sessions, one-time secrets; and the crypto helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import Type, extract_parameters
from sonata_auth.adapters.crypto import FernetSecretBox
from sonata_auth.adapters.hashing import Argon2Hasher
from sonata_auth.domain.errors import WeakPasswordError
from sonata_auth.domain.model import (
    OneTimeSecret,
    Purpose,
    RefreshFamily,
    Role,
    User,
    check_password_policy,
    is_e164,
    normalize_email,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 10"),
        ("x" * 257, "at most 256"),
        ("Ada@Example.com", "email"),
        ("abababababab", "distinct"),
    ],
)
def test_password_policy_refuses_with_the_rule(password: str, reason: str) -> None:
    with pytest.raises(WeakPasswordError, match=reason):
        check_password_policy(password, "ada@example.com")


def test_password_policy_accepts_a_passphrase() -> None:
    check_password_policy("correct horse battery", "ada@example.com")


@pytest.mark.parametrize(
    ("phone", "ok"),
    [
        ("+441632960961", True),
        ("+33612345678", True),
        ("0612345678", False),
        ("+0123456", False),
        ("+44 1632 960961", False),
        ("+1234", False),
    ],
)
def test_phone_numbers_must_be_e164(phone: str, ok: bool) -> None:
    assert is_e164(phone) is ok


def test_emails_compare_case_and_space_insensitively() -> None:
    assert normalize_email("  Ada@Example.COM ") == "ada@example.com"


def test_teachers_and_admins_need_totp() -> None:
    user = User(id="u", email="e", created_at=T0, display_name="d")
    assert not user.requires_totp
    user.roles = [Role.PARENT, Role.TEACHER]
    assert user.requires_totp
    user.roles = [Role.ADMIN]
    assert user.requires_totp


def test_a_family_is_revoked_once_and_expires() -> None:
    family = RefreshFamily("f", "u", T0, T0 + timedelta(days=30))
    assert family.is_active(T0)
    assert not family.is_active(T0 + timedelta(days=30))
    family.revoke(T0, "logout")
    family.revoke(T0 + timedelta(hours=1), "refresh_token_reused")
    assert (family.revoked_at, family.revoked_reason) == (T0, "logout")
    assert not family.is_active(T0)


def test_one_time_secret_usable_until_used_expired_or_out_of_attempts() -> None:
    secret = OneTimeSecret(
        "h", Purpose.PHONE_VERIFICATION, "u", T0, T0 + timedelta(minutes=10), max_attempts=2
    )
    assert secret.is_usable(T0)
    assert not secret.is_usable(T0 + timedelta(minutes=10))
    secret.attempts = 2
    assert not secret.is_usable(T0)
    secret.attempts, secret.used_at = 0, T0
    assert not secret.is_usable(T0)


async def test_argon2id_with_owasp_parameters() -> None:
    hasher = Argon2Hasher()
    hashed = await hasher.hash("correct horse battery")
    params = extract_parameters(hashed)
    assert params.type is Type.ID
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)
    assert await hasher.verify(hashed, "correct horse battery")
    assert not await hasher.verify(hashed, "correct horse batterY")
    # A corrupt stored hash is a failed login, not a crash.
    assert not await hasher.verify("$argon2id$garbage", "x")
    await hasher.verify_dummy("anything")


def test_secret_box_keeps_old_ciphertexts_readable_after_a_secret_change() -> None:
    old = FernetSecretBox(["first-secret-0123456789"])
    stored = old.encrypt(b"ed25519 private key bytes")
    assert b"ed25519" not in stored
    rotated = FernetSecretBox(["second-secret-9876543210", "first-secret-0123456789"])
    assert rotated.decrypt(stored) == b"ed25519 private key bytes"
    assert rotated.keyed_hash("123456") != old.keyed_hash("123456")
    assert old.keyed_hash("123456") == FernetSecretBox(["first-secret-0123456789"]).keyed_hash(
        "123456"
    )
