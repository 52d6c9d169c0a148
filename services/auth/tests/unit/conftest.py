"""In-memory fakes implementing the same Protocols as auth's real adapters."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from sonata_auth.adapters.keyring import KeyRing
from sonata_auth.domain.errors import EmailTakenError, OAuthFailedError
from sonata_auth.domain.model import (
    AuditEntry,
    OAuthAccount,
    OAuthState,
    OneTimeSecret,
    Purpose,
    RefreshFamily,
    RefreshToken,
    SigningKey,
    User,
)
from sonata_auth.service_layer.deps import AuthPolicy, Deps, Limit
from sonata_auth.service_layer.ports import OidcIdentity
from sonata_contracts import Event

T = TypeVar("T")


@dataclass
class Store:
    users: dict[str, User] = field(default_factory=dict)
    families: dict[str, RefreshFamily] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    secrets: list[OneTimeSecret] = field(default_factory=list)
    oauth_accounts: list[OAuthAccount] = field(default_factory=list)
    oauth_states: dict[str, OAuthState] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)


class FakeUsers:
    def __init__(self, s: Store) -> None:
        self.s = s

    async def get(self, user_id: str) -> User | None:
        return copy.deepcopy(self.s.users.get(user_id))

    async def get_by_email(self, email: str) -> User | None:
        found = [u for u in self.s.users.values() if u.email == email]
        return copy.deepcopy(found[0]) if found else None

    async def add(self, user: User) -> None:
        if any(u.email == user.email for u in self.s.users.values()):
            raise EmailTakenError()
        self.s.users[user.id] = copy.deepcopy(user)

    async def save(self, user: User) -> None:
        self.s.users[user.id] = copy.deepcopy(user)

    async def delete(self, user_id: str) -> None:
        self.s.users.pop(user_id, None)


class FakeFamilies:
    def __init__(self, s: Store) -> None:
        self.s = s

    async def get(self, family_id: str) -> RefreshFamily | None:
        return copy.deepcopy(self.s.families.get(family_id))

    async def add(self, family: RefreshFamily) -> None:
        self.s.families[family.id] = copy.deepcopy(family)

    async def save(self, family: RefreshFamily) -> None:
        self.s.families[family.id] = copy.deepcopy(family)

    async def list_for_user(self, user_id: str) -> list[RefreshFamily]:
        return [copy.deepcopy(f) for f in self.s.families.values() if f.user_id == user_id]

    async def delete_for_user(self, user_id: str) -> None:
        for k in [k for k, f in self.s.families.items() if f.user_id == user_id]:
            del self.s.families[k]


class FakeRefreshTokens:
    def __init__(self, s: Store) -> None:
        self.s = s

    async def get(self, token_hash: str) -> RefreshToken | None:
        return copy.deepcopy(self.s.refresh_tokens.get(token_hash))

    async def add(self, token: RefreshToken) -> None:
        self.s.refresh_tokens[token.token_hash] = copy.deepcopy(token)

    async def mark_used(self, token_hash: str, now: datetime) -> bool:
        token = self.s.refresh_tokens.get(token_hash)
        if token is None or token.used_at is not None:
            return False
        token.used_at = now
        return True

    async def delete_for_user(self, user_id: str) -> None:
        for k in [k for k, t in self.s.refresh_tokens.items() if t.user_id == user_id]:
            del self.s.refresh_tokens[k]


class FakeSecrets:
    def __init__(self, s: Store) -> None:
        self.s = s

    async def get(self, secret_hash: str, purpose: Purpose) -> OneTimeSecret | None:
        for x in self.s.secrets:
            if x.secret_hash == secret_hash and x.purpose == purpose:
                return copy.deepcopy(x)
        return None

    async def pending_for_user(self, user_id: str, purpose: Purpose) -> OneTimeSecret | None:
        mine = [
            x
            for x in self.s.secrets
            if x.user_id == user_id and x.purpose == purpose and x.used_at is None
        ]
        return copy.deepcopy(max(mine, key=lambda x: x.created_at)) if mine else None

    async def add(self, secret: OneTimeSecret) -> None:
        self.s.secrets.append(copy.deepcopy(secret))

    async def save(self, secret: OneTimeSecret) -> None:
        self.s.secrets = [
            copy.deepcopy(secret)
            if (x.secret_hash, x.purpose) == (secret.secret_hash, secret.purpose)
            else x
            for x in self.s.secrets
        ]

    async def consume_all(self, user_id: str, purpose: Purpose, now: datetime) -> None:
        for x in self.s.secrets:
            if x.user_id == user_id and x.purpose == purpose and x.used_at is None:
                x.used_at = now

    async def delete_for_user(self, user_id: str) -> None:
        self.s.secrets = [x for x in self.s.secrets if x.user_id != user_id]


class FakeOAuthAccounts:
    def __init__(self, s: Store) -> None:
        self.s = s

    async def get(self, provider: str, subject: str) -> OAuthAccount | None:
        for a in self.s.oauth_accounts:
            if (a.provider, a.subject) == (provider, subject):
                return copy.deepcopy(a)
        return None

    async def add(self, account: OAuthAccount) -> None:
        self.s.oauth_accounts.append(copy.deepcopy(account))

    async def list_for_user(self, user_id: str) -> list[OAuthAccount]:
        return [copy.deepcopy(a) for a in self.s.oauth_accounts if a.user_id == user_id]

    async def delete_for_user(self, user_id: str) -> None:
        self.s.oauth_accounts = [a for a in self.s.oauth_accounts if a.user_id != user_id]


class FakeOAuthStates:
    def __init__(self, s: Store) -> None:
        self.s = s

    async def add(self, state: OAuthState) -> None:
        self.s.oauth_states[state.state_hash] = copy.deepcopy(state)

    async def pop(self, state_hash: str) -> OAuthState | None:
        return self.s.oauth_states.pop(state_hash, None)


class FakeAudit:
    def __init__(self, s: Store) -> None:
        self.s = s

    async def add(self, entry: AuditEntry) -> None:
        self.s.audit.append(copy.deepcopy(entry))

    async def list_for_user(self, user_id: str, limit: int = 500) -> list[AuditEntry]:
        return [copy.deepcopy(e) for e in self.s.audit if e.user_id == user_id][-limit:]

    async def anonymise(self, user_id: str, email: str) -> None:
        for entry in self.s.audit:
            if entry.user_id == user_id or entry.detail.get("email") == email:
                entry.ip = None
                entry.detail.pop("email", None)


class FakeTx:
    def __init__(self, s: Store) -> None:
        self.users = FakeUsers(s)
        self.families = FakeFamilies(s)
        self.refresh_tokens = FakeRefreshTokens(s)
        self.secrets = FakeSecrets(s)
        self.oauth_accounts = FakeOAuthAccounts(s)
        self.oauth_states = FakeOAuthStates(s)
        self.audit = FakeAudit(s)
        self.events: list[Event] = []
        self.forgotten: list[str] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)

    async def forget_events(self, user_id: str) -> None:
        self.forgotten.append(user_id)
        named = json.dumps(user_id)
        self.events = [e for e in self.events if named not in e.to_json().decode()]


class FakeUnitOfWork:
    """Transactions by snapshot: a failing use case leaves the store and the outbox untouched."""

    def __init__(self) -> None:
        self.store = Store()
        self.published: list[Event] = []

    async def run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        snapshot = copy.deepcopy(self.store)
        tx = FakeTx(self.store)
        try:
            result = await fn(tx)
        except BaseException:
            self.store.__dict__.update(snapshot.__dict__)
            raise
        for user_id in tx.forgotten:
            named = json.dumps(user_id)
            self.published = [e for e in self.published if named not in e.to_json().decode()]
        self.published.extend(tx.events)
        return result

    def events(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.published if isinstance(e, kind)]


class FakeKeyStore:
    def __init__(self) -> None:
        self.keys: list[SigningKey] = []

    async def list(self) -> list[SigningKey]:
        return list(self.keys)

    async def add_and_retire_others(self, key: SigningKey, now: datetime) -> None:
        for k in self.keys:
            if k.retired_at is None:
                k.retired_at = now
        self.keys.append(key)


class PlainHasher:
    """Same contract as Argon2; salted SHA-256 keeps unit tests fast."""

    def __init__(self) -> None:
        self.dummy_calls = 0

    async def hash(self, password: str) -> str:
        return "sha256$" + hashlib.sha256(password.encode()).hexdigest()

    async def verify(self, password_hash: str, password: str) -> bool:
        return hmac.compare_digest(password_hash, await self.hash(password))

    async def verify_dummy(self, password: str) -> None:
        self.dummy_calls += 1


class FernetBox:
    def __init__(self) -> None:
        self.key = Fernet.generate_key()
        self.f = Fernet(self.key)

    def encrypt(self, plaintext: bytes) -> bytes:
        return self.f.encrypt(plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        return self.f.decrypt(ciphertext)

    def keyed_hash(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()


class FakeClock:
    def __init__(self) -> None:
        self.t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


class MemoryLimiter:
    def __init__(self) -> None:
        self.hits: dict[str, list[datetime]] = {}

    async def hit(self, bucket: str, limit: int, window_s: int, now: datetime) -> int | None:
        recent = [t for t in self.hits.get(bucket, []) if now - t < timedelta(seconds=window_s)]
        recent.append(now)
        self.hits[bucket] = recent
        if len(recent) > limit:
            return max(1, int((recent[0] + timedelta(seconds=window_s) - now).total_seconds()))
        return None


class ScriptedOidc:
    """The provider's side scripted: what identity a code yields, and the nonce it carries."""

    def __init__(self) -> None:
        self.identities: dict[str, OidcIdentity] = {}
        self.last_nonce: str | None = None
        self.last_verifier: str | None = None

    def providers(self) -> list[str]:
        return ["acme"]

    async def authorization_url(
        self, provider: str, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        self.last_nonce, self.last_verifier = nonce, code_verifier
        q = urlencode({"redirect_uri": redirect_uri, "state": state, "nonce": nonce})
        return f"https://idp.example/authorize?{q}"

    async def exchange(
        self, provider: str, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcIdentity:
        if code_verifier != self.last_verifier or nonce != self.last_nonce:
            raise OAuthFailedError("verifier or nonce mismatch")
        return self.identities[code]


REDIRECT = "https://app.example/oauth/callback"


@dataclass
class World:
    deps: Deps
    uow: FakeUnitOfWork
    clock: FakeClock
    hasher: PlainHasher
    oidc: ScriptedOidc
    keys: FakeKeyStore


@pytest.fixture
def world() -> World:
    uow = FakeUnitOfWork()
    clock = FakeClock()
    box = FernetBox()
    keys = FakeKeyStore()
    hasher = PlainHasher()
    oidc = ScriptedOidc()
    ring = KeyRing(keys, box, issuer="sonata-auth", audience="sonata")
    policy = AuthPolicy(
        oauth_redirect_uris=frozenset({REDIRECT}),
        login_per_ip=Limit(8, 60),
        login_per_account=Limit(5, 60),
        reset_per_account=Limit(2, 3600),
        reset_answer_floor_s=0.05,
    )
    deps = Deps(
        uow=uow,
        hasher=hasher,
        box=box,
        tokens=ring,
        limiter=MemoryLimiter(),
        clock=clock,
        oidc=oidc,
        policy=policy,
    )
    return World(deps=deps, uow=uow, clock=clock, hasher=hasher, oidc=oidc, keys=keys)
