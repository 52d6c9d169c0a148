"""auth's repositories, unit of work, rate limiter and key store against real SecantusDB."""

from __future__ import annotations

import asyncio
import uuid

import jwt
import pytest
from sonata_auth.adapters.keyring import KeyRing
from sonata_auth.adapters.rate_limit import MongoRateLimiter
from sonata_auth.adapters.repository import MongoSigningKeyStore
from sonata_auth.domain.errors import (
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    RateLimitedError,
    RefreshTokenReusedError,
)
from sonata_auth.domain.model import OAuthState, User
from sonata_auth.service_layer import accounts, sessions
from sonata_contracts.auth import EmailVerificationRequested, UserRegistered

PASSWORD = "correct horse battery"


def _email() -> str:
    return f"it-{uuid.uuid4().hex[:8]}@example.com"


async def _outbox_rows(auth_db, name: str) -> list[dict]:
    return await auth_db.db["outbox"].find({"name": name}).to_list()


async def _verified(auth_db, email: str) -> str:
    d = auth_db.deps
    await accounts.signup(d, email, PASSWORD, None, "en", "UTC", "127.0.0.1")
    row = await auth_db.db["outbox"].find_one(
        {"name": "auth.email_verification_requested.v1", "body": {"$regex": email}}
    )
    assert row is not None
    token = EmailVerificationRequested.model_validate_json(row["body"]).token
    await accounts.verify_email(d, token, None)
    user = await auth_db.db["users"].find_one({"email": email})
    return str(user["_id"])


async def test_signup_writes_user_and_events_in_one_transaction(auth_db):
    email = _email()
    await accounts.signup(auth_db.deps, email, PASSWORD, "Ada", "en", "UTC", None)
    user = await auth_db.db["users"].find_one({"email": email})
    assert user["password_hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    registered = [
        r for r in await _outbox_rows(auth_db, UserRegistered.NAME) if email in str(r["body"])
    ]
    assert len(registered) == 1
    assert registered[0]["published_at"] is None


async def test_a_failing_transaction_leaves_no_row_and_no_event(auth_db):
    email = _email()
    before = await auth_db.db["outbox"].count_documents({})

    async def half_done(tx):
        user = User(
            id=uuid.uuid4().hex, email=email, created_at=auth_db.deps.clock.now(), display_name="x"
        )
        await tx.users.add(user)
        await tx.publish(
            UserRegistered(
                user_id=user.id,
                email=email,
                display_name="x",
                roles=["student"],
                locale="en",
                timezone="UTC",
            )
        )
        raise RuntimeError("crash after the writes")

    with pytest.raises(RuntimeError):
        await auth_db.deps.uow.run(half_done)
    assert await auth_db.db["users"].find_one({"email": email}) is None
    assert await auth_db.db["outbox"].count_documents({}) == before


async def test_concurrent_signups_with_one_address_make_one_user(auth_db):
    email = _email()
    await asyncio.gather(
        *(
            accounts.signup(auth_db.deps, email, PASSWORD, None, "en", "UTC", None)
            for _ in range(3)
        ),
        return_exceptions=True,
    )
    assert await auth_db.db["users"].count_documents({"email": email}) == 1
    # The losers of the race hit the unique index and half-wrote nothing.
    registered = [
        r for r in await _outbox_rows(auth_db, UserRegistered.NAME) if email in str(r["body"])
    ]
    assert len(registered) == 1


async def test_concurrent_refresh_with_one_token_lets_one_through_and_revokes(auth_db):
    email = _email()
    await _verified(auth_db, email)
    tokens = (await sessions.login(auth_db.deps, email, PASSWORD, None)).tokens
    results = await asyncio.gather(
        sessions.refresh(auth_db.deps, tokens.refresh_token, None),
        sessions.refresh(auth_db.deps, tokens.refresh_token, None),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], RefreshTokenReusedError | InvalidRefreshTokenError)
    # Reuse means theft: the winner's new token belongs to a revoked family now.
    with pytest.raises(InvalidRefreshTokenError):
        await sessions.refresh(auth_db.deps, winners[0].refresh_token, None)


async def test_login_limit_is_shared_by_every_instance(auth_db):
    email = _email()
    other_instance = MongoRateLimiter()
    now = auth_db.deps.clock.now()
    for _ in range(3):
        with pytest.raises(InvalidCredentialsError):
            await sessions.login(auth_db.deps, email, "wrong password!", "10.1.1.1")
    # A second process sees the same counter.
    assert await other_instance.hit(f"login:account:{email}", 3, 60, now) is not None
    with pytest.raises(RateLimitedError) as limited:
        await sessions.login(auth_db.deps, email, "wrong password!", "10.1.1.1")
    assert 1 <= limited.value.retry_after <= 60


async def test_signing_keys_survive_a_restart_and_stay_encrypted(auth_db):
    user = User(
        id="u-keys", email="k@example.com", created_at=auth_db.deps.clock.now(), display_name="k"
    )
    now = auth_db.deps.clock.now()
    token = await auth_db.deps.tokens.issue(user, "sid-1", now)
    restarted = KeyRing(MongoSigningKeyStore(), auth_db.deps.box, "sonata-auth", "sonata")
    assert (await restarted.verify(token, now)).sub == "u-keys"
    kid = jwt.get_unverified_header(token)["kid"]
    raw = await auth_db.db["signing_keys"].find_one({"_id": kid})
    assert set(raw) >= {"public_jwk", "private_encrypted", "created_at"}
    assert raw["private_encrypted"][:4] == b"gAAA"  # a Fernet token, not a raw key


async def test_rotation_by_one_instance_is_seen_by_another(auth_db):
    now = auth_db.deps.clock.now()
    other = KeyRing(MongoSigningKeyStore(), auth_db.deps.box, "sonata-auth", "sonata")
    new_kid = await auth_db.deps.tokens.rotate(now)
    user = User(id="u-rot", email="r@example.com", created_at=now, display_name="r")
    token = await auth_db.deps.tokens.issue(user, "sid", now)
    assert jwt.get_unverified_header(token)["kid"] == new_kid
    # The other instance has never seen this kid: it re-reads the store once and accepts.
    assert (await other.verify(token, now)).sub == "u-rot"
    kids = [k["kid"] for k in (await other.jwks(now))["keys"]]
    assert new_kid in kids
    assert len(kids) >= 2


async def test_oauth_state_is_taken_once(auth_db):
    async def add(tx):

        await tx.oauth_states.add(OAuthState("h1", "acme", "n", "v", "https://x/cb", now, now))

    now = auth_db.deps.clock.now()
    await auth_db.deps.uow.run(add)

    async def pop(tx):
        return await tx.oauth_states.pop("h1")

    first, second = await asyncio.gather(auth_db.deps.uow.run(pop), auth_db.deps.uow.run(pop))
    assert [s is not None for s in (first, second)].count(True) == 1


async def test_deleting_an_account_strips_its_address_and_ips_from_the_audit_log(auth_db):
    email, bystander = _email(), _email()
    d = auth_db.deps
    with pytest.raises(InvalidCredentialsError):
        await sessions.login(d, email, "typed before signing up", "10.1.1.1")
    user_id = await _verified(auth_db, email)
    other_id = await _verified(auth_db, bystander)
    with pytest.raises(InvalidCredentialsError):
        await sessions.login(d, email, "wrong password", "10.1.1.2")
    with pytest.raises(InvalidCredentialsError):
        await sessions.login(d, bystander, "wrong password", "10.1.1.3")
    await accounts.delete_account(d, user_id)

    rows = await auth_db.db["audit_log"].find({"user_id": user_id}).to_list()
    assert {"signup", "login_failed", "account_deleted"} <= {r["event"] for r in rows}
    assert await auth_db.db["audit_log"].count_documents({"detail.email": email}) == 0
    assert all(r["ip"] is None for r in rows)
    # Another person's trail is untouched.
    kept = await auth_db.db["audit_log"].find_one({"user_id": other_id, "event": "login_failed"})
    assert (kept["ip"], kept["detail"]["email"]) == ("10.1.1.3", bystander)
    # The outbox forgets the events that carried the address and the links, sent or not.
    outbox = auth_db.db["outbox"]
    assert await outbox.count_documents({"body": {"$regex": email}}) == 0
    left = [r["name"] async for r in outbox.find({"body": {"$regex": user_id}})]
    assert left == ["auth.user_deleted.v1"]
    assert await outbox.count_documents({"body": {"$regex": bystander}}) == 2
