"""Signup, email and phone verification, password reset, the account's own data and deletion."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from sonata_contracts.auth import (
    EmailVerificationRequested,
    PasswordResetRequested,
    PhoneVerificationRequested,
    UserDeleted,
    UserRegistered,
)

from sonata_auth.domain.errors import (
    EmailTakenError,
    InvalidOneTimeTokenError,
    InvalidPhoneCodeError,
    NotFoundError,
    TooManyAttemptsError,
    UnprocessableError,
)
from sonata_auth.domain.model import (
    EMAIL_VERIFICATION_TTL,
    PASSWORD_RESET_TTL,
    PHONE_CODE_MAX_ATTEMPTS,
    PHONE_CODE_TTL,
    AuditEvent,
    OneTimeSecret,
    Purpose,
    User,
    check_password_policy,
    is_e164,
    normalize_email,
)
from sonata_auth.service_layer.deps import (
    Deps,
    audit,
    hash_secret,
    new_code,
    new_id,
    new_secret,
    revoke_all_sessions,
)
from sonata_auth.service_layer.ports import Tx
from sonata_auth.service_layer.sessions import check_limit


async def _request_email_verification(tx: Tx, d: Deps, user: User, now: datetime) -> None:
    token = new_secret()
    await tx.secrets.consume_all(user.id, Purpose.EMAIL_VERIFICATION, now)
    await tx.secrets.add(
        OneTimeSecret(
            secret_hash=hash_secret(token),
            purpose=Purpose.EMAIL_VERIFICATION,
            user_id=user.id,
            created_at=now,
            expires_at=now + EMAIL_VERIFICATION_TTL,
        )
    )
    await tx.publish(
        EmailVerificationRequested(
            user_id=user.id,
            email=user.email,
            token=token,
            verify_url=d.policy.email_verification_url.format(token=token),
            expires_at=now + EMAIL_VERIFICATION_TTL,
        )
    )


async def signup(
    d: Deps,
    email: str,
    password: str,
    display_name: str | None,
    locale: str,
    timezone: str,
    ip: str | None,
) -> None:
    """Same answer whether or not the address is taken: signup must not list our users."""
    email = normalize_email(email)
    check_password_policy(password, email)
    password_hash = await d.hasher.hash(password)
    now = d.clock.now()

    async def create(tx: Tx) -> None:
        existing = await tx.users.get_by_email(email)
        if existing is not None:
            if not existing.email_verified:
                await _request_email_verification(tx, d, existing, now)
            return
        user = User(
            id=new_id(),
            email=email,
            created_at=now,
            display_name=display_name or email.split("@", 1)[0],
            password_hash=password_hash,
            locale=locale,
            timezone=timezone,
        )
        await tx.users.add(user)
        await audit(tx, AuditEvent.SIGNUP, user.id, now, ip)
        await tx.publish(
            UserRegistered(
                user_id=user.id,
                email=user.email,
                display_name=user.display_name,
                roles=[str(r) for r in user.roles],
                locale=user.locale,
                timezone=user.timezone,
            )
        )
        await _request_email_verification(tx, d, user, now)

    try:
        await d.uow.run(create)
    except EmailTakenError:
        # A concurrent signup with this address won; the answer stays the same.
        return


async def verify_email(d: Deps, token: str, ip: str | None) -> None:
    now = d.clock.now()

    async def verify(tx: Tx) -> None:
        secret = await tx.secrets.get(hash_secret(token), Purpose.EMAIL_VERIFICATION)
        if secret is None or not secret.is_usable(now):
            raise InvalidOneTimeTokenError()
        user = await tx.users.get(secret.user_id)
        if user is None:
            raise InvalidOneTimeTokenError()
        secret.used_at = now
        await tx.secrets.save(secret)
        user.email_verified = True
        await tx.users.save(user)
        await audit(tx, AuditEvent.EMAIL_VERIFIED, user.id, now, ip)

    await d.uow.run(verify)


async def get_user(d: Deps, user_id: str) -> User:
    async def load(tx: Tx) -> User | None:
        return await tx.users.get(user_id)

    user = await d.uow.run(load)
    if user is None:
        raise NotFoundError("no such user")
    return user


async def request_password_reset(d: Deps, email: str, ip: str | None) -> None:
    started = time.monotonic()
    email = normalize_email(email)
    await check_limit(d, f"reset:ip:{ip}", d.policy.reset_per_ip)
    await check_limit(d, f"reset:account:{email}", d.policy.reset_per_account)
    now = d.clock.now()
    token = new_secret()

    async def request(tx: Tx) -> None:
        user = await tx.users.get_by_email(email)
        if user is None:
            return
        await tx.secrets.consume_all(user.id, Purpose.PASSWORD_RESET, now)
        await tx.secrets.add(
            OneTimeSecret(
                secret_hash=hash_secret(token),
                purpose=Purpose.PASSWORD_RESET,
                user_id=user.id,
                created_at=now,
                expires_at=now + PASSWORD_RESET_TTL,
            )
        )
        await audit(tx, AuditEvent.PASSWORD_RESET_REQUESTED, user.id, now, ip)
        await tx.publish(
            PasswordResetRequested(
                user_id=user.id,
                email=user.email,
                token=token,
                reset_url=d.policy.password_reset_url.format(token=token),
                expires_at=now + PASSWORD_RESET_TTL,
            )
        )

    await d.uow.run(request)
    # A known address writes a secret, an audit row and an event; an unknown one only reads.
    # Both answer at the same floor, so the time tells nothing either.
    await asyncio.sleep(max(0.0, d.policy.reset_answer_floor_s - (time.monotonic() - started)))


async def reset_password(d: Deps, token: str, new_password: str, ip: str | None) -> None:
    now = d.clock.now()
    token_hash = hash_secret(token)

    async def owner(tx: Tx) -> tuple[User, OneTimeSecret]:
        secret = await tx.secrets.get(token_hash, Purpose.PASSWORD_RESET)
        user = await tx.users.get(secret.user_id) if secret and secret.is_usable(now) else None
        if user is None or secret is None:
            raise InvalidOneTimeTokenError()
        return user, secret

    user, _ = await d.uow.run(owner)
    check_password_policy(new_password, user.email)
    # Hashing takes ~50 ms of CPU: done between the two transactions, never inside one.
    password_hash = await d.hasher.hash(new_password)

    async def reset(tx: Tx) -> None:
        user, secret = await owner(tx)
        secret.used_at = now
        await tx.secrets.save(secret)
        user.password_hash = password_hash
        # The reset link proves control of the mailbox.
        user.email_verified = True
        await tx.users.save(user)
        await revoke_all_sessions(tx, user.id, now, "password_reset")
        await audit(tx, AuditEvent.PASSWORD_CHANGED, user.id, now, ip, via="reset")

    await d.uow.run(reset)


async def request_phone_verification(d: Deps, user_id: str, phone: str, ip: str | None) -> None:
    phone = phone.strip()
    if not is_e164(phone):
        raise UnprocessableError("phone must be in E.164 form, e.g. +441632960961")
    await check_limit(d, f"phone:account:{user_id}", d.policy.phone_per_account)
    now = d.clock.now()
    code = new_code()

    async def request(tx: Tx) -> None:
        user = await tx.users.get(user_id)
        if user is None:
            raise NotFoundError("no such user")
        await tx.secrets.consume_all(user.id, Purpose.PHONE_VERIFICATION, now)
        await tx.secrets.add(
            OneTimeSecret(
                secret_hash=d.box.keyed_hash(f"{user.id}:{phone}:{code}"),
                purpose=Purpose.PHONE_VERIFICATION,
                user_id=user.id,
                created_at=now,
                expires_at=now + PHONE_CODE_TTL,
                max_attempts=PHONE_CODE_MAX_ATTEMPTS,
                data={"phone": phone},
            )
        )
        await audit(tx, AuditEvent.PHONE_VERIFICATION_REQUESTED, user.id, now, ip)
        await tx.publish(
            PhoneVerificationRequested(
                user_id=user.id, phone=phone, code=code, expires_at=now + PHONE_CODE_TTL
            )
        )

    await d.uow.run(request)


async def confirm_phone(d: Deps, user_id: str, code: str, ip: str | None) -> str:
    now = d.clock.now()

    async def confirm(tx: Tx) -> str | None:
        pending = await tx.secrets.pending_for_user(user_id, Purpose.PHONE_VERIFICATION)
        if pending is None or now >= pending.expires_at:
            raise InvalidOneTimeTokenError("no pending phone verification; ask for a new code")
        if pending.attempts >= pending.max_attempts:
            raise TooManyAttemptsError()
        phone = str(pending.data["phone"])
        if d.box.keyed_hash(f"{user_id}:{phone}:{code.strip()}") != pending.secret_hash:
            pending.attempts += 1
            await tx.secrets.save(pending)
            return None
        pending.used_at = now
        await tx.secrets.save(pending)
        user = await tx.users.get(user_id)
        if user is None:
            raise NotFoundError("no such user")
        user.phone, user.phone_verified = phone, True
        await tx.users.save(user)
        await audit(tx, AuditEvent.PHONE_VERIFIED, user.id, now, ip)
        return phone

    # A wrong code commits its attempt before the refusal.
    phone = await d.uow.run(confirm)
    if phone is None:
        raise InvalidPhoneCodeError()
    return phone


async def delete_account(d: Deps, user_id: str) -> None:
    now = d.clock.now()

    async def delete(tx: Tx) -> None:
        user = await tx.users.get(user_id)
        if user is None:
            raise NotFoundError("no such user")
        await tx.users.delete(user_id)
        await tx.families.delete_for_user(user_id)
        await tx.refresh_tokens.delete_for_user(user_id)
        await tx.secrets.delete_for_user(user_id)
        await tx.oauth_accounts.delete_for_user(user_id)
        # The audit trail outlives the account, naming an id, not a person: its addresses go.
        await tx.audit.anonymise(user_id, user.email)
        # The events kept in the outbox carry the address, name, phone and links; those not
        # sent yet would only tell consumers about data they are now told to erase.
        await tx.forget_events(user_id)
        await audit(tx, AuditEvent.ACCOUNT_DELETED, user_id, now)
        await tx.publish(UserDeleted(user_id=user_id))

    await d.uow.run(delete)


async def export_account(d: Deps, user_id: str) -> dict[str, Any]:
    """Everything auth holds about the user, minus secrets (hashes, keys, codes)."""

    async def gather(tx: Tx) -> dict[str, Any]:
        user = await tx.users.get(user_id)
        if user is None:
            raise NotFoundError("no such user")
        families = await tx.families.list_for_user(user_id)
        accounts = await tx.oauth_accounts.list_for_user(user_id)
        entries = await tx.audit.list_for_user(user_id)
        return {
            "user": {
                "id": user.id,
                "email": user.email,
                "email_verified": user.email_verified,
                "display_name": user.display_name,
                "locale": user.locale,
                "timezone": user.timezone,
                "roles": [str(r) for r in user.roles],
                "phone": user.phone,
                "phone_verified": user.phone_verified,
                "totp_enabled": user.totp_enabled,
                "has_password": user.password_hash is not None,
                "created_at": user.created_at.isoformat(),
            },
            "oauth_accounts": [
                {"provider": a.provider, "email": a.email, "linked_at": a.linked_at.isoformat()}
                for a in accounts
            ],
            "sessions": [
                {
                    "id": f.id,
                    "created_at": f.created_at.isoformat(),
                    "expires_at": f.expires_at.isoformat(),
                    "revoked_at": f.revoked_at.isoformat() if f.revoked_at else None,
                    "revoked_reason": f.revoked_reason,
                }
                for f in families
            ],
            "audit_log": [
                {"at": e.at.isoformat(), "event": str(e.event), "ip": e.ip, "detail": e.detail}
                for e in entries
            ],
        }

    return await d.uow.run(gather)
