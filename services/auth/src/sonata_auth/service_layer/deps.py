"""The dependencies every use case receives, and small helpers for secrets they share."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sonata_auth.domain.model import (
    ACCESS_TOKEN_TTL,
    REFRESH_FAMILY_TTL,
    AuditEntry,
    AuditEvent,
    RefreshFamily,
    RefreshToken,
    TokenPair,
    User,
)
from sonata_auth.service_layer.ports import (
    Clock,
    OidcClient,
    PasswordHasher,
    RateLimiter,
    SecretBox,
    TokenIssuer,
    Tx,
    UnitOfWork,
)


@dataclass(frozen=True)
class Limit:
    attempts: int
    window_s: int


@dataclass(frozen=True)
class AuthPolicy:
    # Templates with a {token} placeholder: the links notifications puts in the emails.
    email_verification_url: str = "http://127.0.0.1:8080/verify-email?token={token}"
    password_reset_url: str = "http://127.0.0.1:8080/reset-password?token={token}"
    oauth_redirect_uris: frozenset[str] = frozenset()
    login_per_ip: Limit = Limit(30, 300)
    login_per_account: Limit = Limit(10, 300)
    reset_per_ip: Limit = Limit(10, 3600)
    reset_per_account: Limit = Limit(3, 3600)
    # A reset request answers no sooner than this, for a known address or not (seconds).
    reset_answer_floor_s: float = 0.3
    phone_per_account: Limit = Limit(3, 600)
    totp_issuer: str = "Sonata"


@dataclass
class Deps:
    uow: UnitOfWork
    hasher: PasswordHasher
    box: SecretBox
    tokens: TokenIssuer
    limiter: RateLimiter
    clock: Clock
    oidc: OidcClient
    policy: AuthPolicy = field(default_factory=AuthPolicy)


def new_id() -> str:
    return uuid.uuid4().hex


def new_secret() -> str:
    """256 random bits, URL-safe: emailed tokens, refresh tokens, step-up handles."""
    return secrets.token_urlsafe(32)


def new_code() -> str:
    """Six digits for an SMS; brute force is bounded by the attempt limit, not the entropy."""
    return f"{secrets.randbelow(10**6):06d}"


def hash_secret(secret: str) -> str:
    """High-entropy secrets need no slow hash: SHA-256 is enough to make a DB dump useless."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def audit(
    tx: Tx,
    event: AuditEvent,
    user_id: str | None,
    now: datetime,
    ip: str | None = None,
    **detail: object,
) -> None:
    await tx.audit.add(
        AuditEntry(id=new_id(), at=now, event=event, user_id=user_id, ip=ip, detail=dict(detail))
    )


async def open_session(tx: Tx, user: User, now: datetime) -> tuple[str, str]:
    """A new refresh family for a fresh login; returns (family id, refresh token)."""
    family = RefreshFamily(
        id=new_id(), user_id=user.id, created_at=now, expires_at=now + REFRESH_FAMILY_TTL
    )
    await tx.families.add(family)
    refresh = new_secret()
    await tx.refresh_tokens.add(
        RefreshToken(
            token_hash=hash_secret(refresh), family_id=family.id, user_id=user.id, issued_at=now
        )
    )
    return family.id, refresh


async def token_pair(d: Deps, user: User, sid: str, refresh: str, now: datetime) -> TokenPair:
    access = await d.tokens.issue(user, sid, now)
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=int(ACCESS_TOKEN_TTL.total_seconds()),
    )


async def revoke_all_sessions(tx: Tx, user_id: str, now: datetime, reason: str) -> None:
    for family in await tx.families.list_for_user(user_id):
        if family.revoked_at is None:
            family.revoke(now, reason)
            await tx.families.save(family)
