"""Login (with its TOTP step-up), refresh rotation with reuse detection, logout, authentication."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

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
from sonata_auth.domain.model import (
    LOGIN_CHALLENGE_MAX_ATTEMPTS,
    LOGIN_CHALLENGE_TTL,
    AccessClaims,
    AuditEvent,
    OneTimeSecret,
    Purpose,
    RefreshToken,
    TokenPair,
    User,
    normalize_email,
)
from sonata_auth.service_layer.deps import (
    Deps,
    Limit,
    audit,
    hash_secret,
    new_secret,
    open_session,
    token_pair,
)
from sonata_auth.service_layer.ports import Tx
from sonata_auth.service_layer.totp import TOTP_ENROLMENT_TTL, accept_totp


class LoginStatus(StrEnum):
    OK = "ok"
    TOTP_REQUIRED = "totp_required"
    TOTP_ENROLMENT_REQUIRED = "totp_enrolment_required"


@dataclass(frozen=True)
class LoginResult:
    status: LoginStatus
    tokens: TokenPair | None = None
    # A short-lived handle for the next step: the TOTP code, or the TOTP enrolment.
    challenge: str | None = None


async def check_limit(d: Deps, bucket: str, limit: Limit) -> None:
    retry_after = await d.limiter.hit(bucket, limit.attempts, limit.window_s, d.clock.now())
    if retry_after is not None:
        raise RateLimitedError(retry_after)


async def finish_login(
    d: Deps, user: User, ip: str | None, method: str, *, event: AuditEvent | None = None
) -> LoginResult:
    """After the first factor: step up, demand enrolment, or open a session."""
    now = d.clock.now()
    if user.totp_enabled or user.requires_totp:
        purpose = Purpose.LOGIN_TOTP if user.totp_enabled else Purpose.TOTP_ENROLMENT
        ttl = LOGIN_CHALLENGE_TTL if user.totp_enabled else TOTP_ENROLMENT_TTL
        challenge = new_secret()

        async def step_up(tx: Tx) -> None:
            await tx.secrets.add(
                OneTimeSecret(
                    secret_hash=hash_secret(challenge),
                    purpose=purpose,
                    user_id=user.id,
                    created_at=now,
                    expires_at=now + ttl,
                    max_attempts=LOGIN_CHALLENGE_MAX_ATTEMPTS,
                )
            )

        await d.uow.run(step_up)
        status = (
            LoginStatus.TOTP_REQUIRED if user.totp_enabled else LoginStatus.TOTP_ENROLMENT_REQUIRED
        )
        return LoginResult(status=status, challenge=challenge)

    async def open_(tx: Tx) -> tuple[str, str]:
        opened = await open_session(tx, user, now)
        await audit(tx, event or AuditEvent.LOGIN_SUCCEEDED, user.id, now, ip, method=method)
        return opened

    sid, refresh = await d.uow.run(open_)
    return LoginResult(status=LoginStatus.OK, tokens=await token_pair(d, user, sid, refresh, now))


async def _audit_rate_limited(d: Deps, email: str, ip: str | None, limited_by: str) -> None:
    """A refused attempt lands on the account's trail when the address has one."""
    now = d.clock.now()

    async def record(tx: Tx) -> None:
        user = await tx.users.get_by_email(email)
        await audit(
            tx,
            AuditEvent.LOGIN_RATE_LIMITED,
            user.id if user else None,
            now,
            ip,
            email=email,
            limited_by=limited_by,
        )

    await d.uow.run(record)


async def login(d: Deps, email: str, password: str, ip: str | None) -> LoginResult:
    email = normalize_email(email)
    # Both buckets count every attempt, known account or not, so the limit reveals nothing.
    for bucket, key, limit in (
        ("ip", ip, d.policy.login_per_ip),
        ("account", email, d.policy.login_per_account),
    ):
        try:
            await check_limit(d, f"login:{bucket}:{key}", limit)
        except RateLimitedError:
            await _audit_rate_limited(d, email, ip, bucket)
            raise

    async def find(tx: Tx) -> User | None:
        return await tx.users.get_by_email(email)

    user = await d.uow.run(find)
    if user is None or user.password_hash is None:
        await d.hasher.verify_dummy(password)
    elif await d.hasher.verify(user.password_hash, password):
        if not user.email_verified:
            raise EmailNotVerifiedError()
        return await finish_login(d, user, ip, "password")
    user_id = user.id if user else None
    now = d.clock.now()

    async def failed(tx: Tx) -> None:
        await audit(tx, AuditEvent.LOGIN_FAILED, user_id, now, ip, email=email)

    await d.uow.run(failed)
    raise InvalidCredentialsError()


async def take_challenge(tx: Tx, challenge: str, purpose: Purpose, now: datetime) -> OneTimeSecret:
    secret = await tx.secrets.get(hash_secret(challenge), purpose)
    if secret is None or not secret.is_usable(now):
        raise InvalidOneTimeTokenError()
    return secret


async def login_totp(d: Deps, challenge: str, code: str, ip: str | None) -> TokenPair:
    now = d.clock.now()

    async def step(tx: Tx) -> tuple[User, str, str] | None:
        secret = await take_challenge(tx, challenge, Purpose.LOGIN_TOTP, now)
        user = await tx.users.get(secret.user_id)
        if user is None or user.totp_secret is None:
            raise InvalidOneTimeTokenError()
        step_no = accept_totp(d.box, user.totp_secret, code, now, user.totp_last_step)
        if step_no is None:
            secret.attempts += 1
            await tx.secrets.save(secret)
            await audit(tx, AuditEvent.TOTP_FAILED, user.id, now, ip)
            return None
        secret.used_at = now
        await tx.secrets.save(secret)
        user.totp_last_step = step_no
        await tx.users.save(user)
        sid, refresh = await open_session(tx, user, now)
        await audit(tx, AuditEvent.LOGIN_SUCCEEDED, user.id, now, ip, method="password+totp")
        return user, sid, refresh

    # A wrong code must still count as an attempt, so it commits before the refusal.
    result = await d.uow.run(step)
    if result is None:
        raise InvalidTotpCodeError()
    user, sid, refresh = result
    return await token_pair(d, user, sid, refresh, now)


async def refresh(d: Deps, refresh_token: str, ip: str | None) -> TokenPair:
    now = d.clock.now()
    token_hash = hash_secret(refresh_token)

    async def rotate(tx: Tx) -> tuple[User, str, str] | None:
        token = await tx.refresh_tokens.get(token_hash)
        if token is None:
            raise InvalidRefreshTokenError()
        family = await tx.families.get(token.family_id)
        if family is None or not family.is_active(now):
            raise InvalidRefreshTokenError("the session of this refresh token has ended")
        user = await tx.users.get(token.user_id)
        if user is None:
            raise InvalidRefreshTokenError()
        if token.used_at is not None or not await tx.refresh_tokens.mark_used(token_hash, now):
            # Someone holds a copy of a token already exchanged: end every session it spawned.
            family.revoke(now, "refresh_token_reused")
            await tx.families.save(family)
            await audit(tx, AuditEvent.REFRESH_REUSED, user.id, now, ip, family_id=family.id)
            return None
        new_refresh = new_secret()
        await tx.refresh_tokens.add(
            RefreshToken(
                token_hash=hash_secret(new_refresh),
                family_id=family.id,
                user_id=user.id,
                issued_at=now,
            )
        )
        return user, family.id, new_refresh

    result = await d.uow.run(rotate)
    if result is None:
        raise RefreshTokenReusedError()
    user, sid, new_refresh = result
    return await token_pair(d, user, sid, new_refresh, now)


async def authenticate(d: Deps, access_token: str) -> AccessClaims:
    """Signature and claims, then the session: a logged-out family's tokens stop at once here."""
    now = d.clock.now()
    claims = await d.tokens.verify(access_token, now)

    async def check(tx: Tx) -> bool:
        family = await tx.families.get(claims.sid)
        return family is not None and family.is_active(now) and family.user_id == claims.sub

    if not await d.uow.run(check):
        raise InvalidTokenError("the session of this token was revoked")
    return claims


async def logout(d: Deps, claims: AccessClaims, ip: str | None) -> None:
    now = d.clock.now()

    async def end(tx: Tx) -> None:
        family = await tx.families.get(claims.sid)
        if family is not None:
            family.revoke(now, "logout")
            await tx.families.save(family)
        await audit(tx, AuditEvent.LOGOUT, claims.sub, now, ip, family_id=claims.sid)

    await d.uow.run(end)
