"""Beanie documents of auth's database; one collection per entity of the domain model."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from sonata_auth.domain.model import AuditEvent, Purpose, Role

# Expired one-time secrets and OAuth states are swept by MongoDB a day after they lapse.
SWEEP_AFTER_S = 86_400


class UserDoc(Document):
    id: str  # type: ignore[assignment]
    email: str
    created_at: datetime
    display_name: str
    password_hash: str | None = None
    email_verified: bool = False
    locale: str = "en"
    timezone: str = "UTC"
    roles: list[Role] = Field(default_factory=lambda: [Role.STUDENT])
    phone: str | None = None
    phone_verified: bool = False
    totp_secret: str | None = None
    totp_pending_secret: str | None = None
    totp_last_step: int | None = None

    class Settings:
        name = "users"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("email", ASCENDING)], unique=True)]


class RefreshFamilyDoc(Document):
    id: str  # type: ignore[assignment]
    user_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    class Settings:
        name = "refresh_families"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("user_id", ASCENDING)])]


class RefreshTokenDoc(Document):
    id: str  # type: ignore[assignment]  # the SHA-256 of the token
    family_id: str
    user_id: str
    issued_at: datetime
    used_at: datetime | None = None

    class Settings:
        name = "refresh_tokens"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING)]),
            IndexModel([("family_id", ASCENDING)]),
        ]


class OneTimeSecretDoc(Document):
    secret_hash: str
    purpose: Purpose
    user_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    attempts: int = 0
    max_attempts: int = 1
    data: dict[str, Any] = Field(default_factory=dict)

    class Settings:
        name = "one_time_secrets"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("secret_hash", ASCENDING), ("purpose", ASCENDING)], unique=True),
            IndexModel(
                [("user_id", ASCENDING), ("purpose", ASCENDING), ("created_at", DESCENDING)]
            ),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=SWEEP_AFTER_S),
        ]


class OAuthAccountDoc(Document):
    provider: str
    subject: str
    user_id: str
    email: str | None
    linked_at: datetime

    class Settings:
        name = "oauth_accounts"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("provider", ASCENDING), ("subject", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING)]),
        ]


class OAuthStateDoc(Document):
    id: str  # type: ignore[assignment]  # the SHA-256 of the state
    provider: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    created_at: datetime
    expires_at: datetime

    class Settings:
        name = "oauth_states"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=SWEEP_AFTER_S)
        ]


class AuditDoc(Document):
    id: str  # type: ignore[assignment]
    at: datetime
    event: AuditEvent
    user_id: str | None
    ip: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    class Settings:
        name = "audit_log"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING), ("at", ASCENDING)])
        ]


class SigningKeyDoc(Document):
    id: str  # type: ignore[assignment]  # the kid
    public_jwk: dict[str, str]
    private_encrypted: bytes
    created_at: datetime
    retired_at: datetime | None = None

    class Settings:
        name = "signing_keys"


class RateLimitDoc(Document):
    id: str  # type: ignore[assignment]  # bucket and window
    hits: int
    expires_at: datetime

    class Settings:
        name = "rate_limits"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)
        ]


DOCUMENTS: list[type[Document]] = [
    UserDoc,
    RefreshFamilyDoc,
    RefreshTokenDoc,
    OneTimeSecretDoc,
    OAuthAccountDoc,
    OAuthStateDoc,
    AuditDoc,
    SigningKeyDoc,
    RateLimitDoc,
]
