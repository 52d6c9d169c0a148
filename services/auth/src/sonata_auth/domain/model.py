"""Auth's entities and the rules that need no I/O: roles, sessions, one-time secrets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sonata_auth.domain.errors import WeakPasswordError


class Role(StrEnum):
    STUDENT = "student"
    TEACHER = "teacher"
    PARENT = "parent"
    ADMIN = "admin"


ROLES_REQUIRING_TOTP = frozenset({Role.TEACHER, Role.ADMIN})

ACCESS_TOKEN_TTL = timedelta(minutes=10)
REFRESH_FAMILY_TTL = timedelta(days=30)
EMAIL_VERIFICATION_TTL = timedelta(hours=24)
PASSWORD_RESET_TTL = timedelta(minutes=30)
PHONE_CODE_TTL = timedelta(minutes=10)
PHONE_CODE_MAX_ATTEMPTS = 5
LOGIN_CHALLENGE_TTL = timedelta(minutes=5)
LOGIN_CHALLENGE_MAX_ATTEMPTS = 5
OAUTH_STATE_TTL = timedelta(minutes=10)

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class Purpose(StrEnum):
    """What a one-time secret is good for; a secret never works for another purpose."""

    EMAIL_VERIFICATION = "email_verification"
    PASSWORD_RESET = "password_reset"
    PHONE_VERIFICATION = "phone_verification"
    LOGIN_TOTP = "login_totp"
    TOTP_ENROLMENT = "totp_enrolment"


class AuditEvent(StrEnum):
    SIGNUP = "signup"
    EMAIL_VERIFIED = "email_verified"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOGIN_RATE_LIMITED = "login_rate_limited"
    TOTP_FAILED = "totp_failed"
    REFRESH_REUSED = "refresh_token_reused"
    LOGOUT = "logout"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    PASSWORD_CHANGED = "password_changed"
    ROLE_CHANGED = "role_changed"
    TOTP_ENROLLED = "totp_enrolled"
    PHONE_VERIFICATION_REQUESTED = "phone_verification_requested"
    PHONE_VERIFIED = "phone_verified"
    OAUTH_LINKED = "oauth_linked"
    OAUTH_LOGIN = "oauth_login"
    ACCOUNT_DELETED = "account_deleted"
    SIGNING_KEY_ROTATED = "signing_key_rotated"


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_password_policy(password: str, email: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"the password may have at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip().lower() == normalize_email(email):
        raise WeakPasswordError("the password must not be the email address")
    if len(set(password)) < 4:
        raise WeakPasswordError("the password repeats too few distinct characters")


def is_e164(phone: str) -> bool:
    return bool(_E164.match(phone))


@dataclass
class User:
    id: str
    email: str
    created_at: datetime
    display_name: str
    password_hash: str | None = None
    email_verified: bool = False
    locale: str = "en"
    timezone: str = "UTC"
    roles: list[Role] = field(default_factory=lambda: [Role.STUDENT])
    phone: str | None = None
    phone_verified: bool = False
    # Both secrets are stored encrypted by the service layer's secret box.
    totp_secret: str | None = None
    totp_pending_secret: str | None = None
    # The last accepted 30 s time step: a code is never accepted twice.
    totp_last_step: int | None = None

    @property
    def totp_enabled(self) -> bool:
        return self.totp_secret is not None

    @property
    def requires_totp(self) -> bool:
        return any(r in ROLES_REQUIRING_TOTP for r in self.roles)

    def has_role(self, role: Role) -> bool:
        return role in self.roles


@dataclass
class RefreshFamily:
    """All refresh tokens descended from one login; revoked as one."""

    id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def revoke(self, now: datetime, reason: str) -> None:
        if self.revoked_at is None:
            self.revoked_at = now
            self.revoked_reason = reason


@dataclass
class RefreshToken:
    token_hash: str
    family_id: str
    user_id: str
    issued_at: datetime
    used_at: datetime | None = None


@dataclass
class OneTimeSecret:
    """An emailed token, an SMS code or a login step-up handle, kept only as a hash."""

    secret_hash: str
    purpose: Purpose
    user_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    attempts: int = 0
    max_attempts: int = 1
    data: dict[str, Any] = field(default_factory=dict)

    def is_usable(self, now: datetime) -> bool:
        return self.used_at is None and now < self.expires_at and self.attempts < self.max_attempts


@dataclass
class OAuthAccount:
    provider: str
    subject: str
    user_id: str
    email: str | None
    linked_at: datetime


@dataclass
class OAuthState:
    state_hash: str
    provider: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    created_at: datetime
    expires_at: datetime


@dataclass
class AuditEntry:
    id: str
    at: datetime
    event: AuditEvent
    user_id: str | None
    ip: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SigningKey:
    kid: str
    public_jwk: dict[str, str]
    private_encrypted: bytes
    created_at: datetime
    retired_at: datetime | None = None

    def is_published(self, now: datetime, grace: timedelta) -> bool:
        """A retired key stays in the JWKS until every token it signed has expired."""
        return self.retired_at is None or now < self.retired_at + grace


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    roles: tuple[str, ...]
    sid: str
    jti: str
    iat: int
    exp: int


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
