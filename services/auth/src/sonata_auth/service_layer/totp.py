"""TOTP (RFC 6238) enrolment and checks; secrets are kept encrypted, codes are single use."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp

from sonata_auth.domain.errors import (
    InvalidOneTimeTokenError,
    InvalidTotpCodeError,
    TotpAlreadyEnabledError,
    TotpNotEnrolledError,
)
from sonata_auth.domain.model import AuditEvent, Purpose, TokenPair, User
from sonata_auth.service_layer.deps import Deps, audit, hash_secret, open_session, token_pair
from sonata_auth.service_layer.ports import SecretBox, Tx

TOTP_STEP_S = 30
TOTP_ENROLMENT_TTL = timedelta(minutes=15)


def accept_totp(
    box: SecretBox, encrypted_secret: str, code: str, now: datetime, last_step: int | None
) -> int | None:
    """The time step the code belongs to (one step of clock drift either way), else None."""
    totp = pyotp.TOTP(box.decrypt(encrypted_secret.encode()).decode())
    current = int(now.timestamp()) // TOTP_STEP_S
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.at(step * TOTP_STEP_S), code.strip()):
            return step
    return None


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    otpauth_uri: str


async def _user_for(
    tx: Tx, user_id: str | None, enrolment_token: str | None, now: datetime
) -> User:
    if enrolment_token is not None:
        handle = await tx.secrets.get(hash_secret(enrolment_token), Purpose.TOTP_ENROLMENT)
        if handle is None or not handle.is_usable(now):
            raise InvalidOneTimeTokenError()
        user_id = handle.user_id
    user = await tx.users.get(user_id) if user_id is not None else None
    if user is None:
        raise InvalidOneTimeTokenError()
    return user


async def start_enrolment(
    d: Deps, *, user_id: str | None = None, enrolment_token: str | None = None
) -> TotpEnrolment:
    now = d.clock.now()
    secret = pyotp.random_base32()

    async def start(tx: Tx) -> User:
        user = await _user_for(tx, user_id, enrolment_token, now)
        if user.totp_enabled:
            raise TotpAlreadyEnabledError()
        user.totp_pending_secret = d.box.encrypt(secret.encode()).decode()
        await tx.users.save(user)
        return user

    user = await d.uow.run(start)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=d.policy.totp_issuer)
    return TotpEnrolment(secret=secret, otpauth_uri=uri)


async def confirm_enrolment(
    d: Deps,
    code: str,
    ip: str | None,
    *,
    user_id: str | None = None,
    enrolment_token: str | None = None,
) -> TokenPair | None:
    """Turn TOTP on; when reached through the login's enrolment handle, also log in."""
    now = d.clock.now()

    async def confirm(tx: Tx) -> tuple[User, str, str] | bool | None:
        user = await _user_for(tx, user_id, enrolment_token, now)
        if user.totp_enabled:
            raise TotpAlreadyEnabledError()
        if user.totp_pending_secret is None:
            raise TotpNotEnrolledError()
        step = accept_totp(d.box, user.totp_pending_secret, code, now, None)
        if step is None:
            if enrolment_token is not None:
                handle = await tx.secrets.get(hash_secret(enrolment_token), Purpose.TOTP_ENROLMENT)
                if handle is not None:
                    handle.attempts += 1
                    await tx.secrets.save(handle)
            await audit(tx, AuditEvent.TOTP_FAILED, user.id, now, ip, during="enrolment")
            return False
        user.totp_secret, user.totp_pending_secret = user.totp_pending_secret, None
        user.totp_last_step = step
        await tx.users.save(user)
        await audit(tx, AuditEvent.TOTP_ENROLLED, user.id, now, ip)
        if enrolment_token is None:
            return None
        await tx.secrets.consume_all(user.id, Purpose.TOTP_ENROLMENT, now)
        sid, refresh = await open_session(tx, user, now)
        await audit(tx, AuditEvent.LOGIN_SUCCEEDED, user.id, now, ip, method="totp_enrolment")
        return user, sid, refresh

    result = await d.uow.run(confirm)
    if result is False:
        raise InvalidTotpCodeError()
    if result is None or result is True:
        return None
    user, sid, refresh = result
    return await token_pair(d, user, sid, refresh, now)
