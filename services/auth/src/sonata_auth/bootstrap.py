"""The composition root: real adapters wired into the use cases' dependencies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from sonata_messaging import Outbox

from sonata_auth.adapters.crypto import FernetSecretBox
from sonata_auth.adapters.hashing import Argon2Hasher
from sonata_auth.adapters.keyring import KeyRing
from sonata_auth.adapters.oidc import AuthlibOidcClient, OidcProvider
from sonata_auth.adapters.rate_limit import MongoRateLimiter
from sonata_auth.adapters.repository import MongoSigningKeyStore
from sonata_auth.adapters.unit_of_work import MongoUnitOfWork
from sonata_auth.service_layer.deps import AuthPolicy, Deps, Limit
from sonata_auth.settings import AuthSettings

GOOGLE_ISSUER = "https://accounts.google.com"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def oidc_providers(settings: AuthSettings) -> list[OidcProvider]:
    providers = [
        OidcProvider(
            name=p.name,
            issuer=p.issuer,
            client_id=p.client_id,
            client_secret=p.client_secret.get_secret_value(),
            scope=p.scope,
            discovery_url=p.discovery_url,
        )
        for p in settings.oidc_providers
    ]
    if settings.google_client_id and settings.google_client_secret:
        providers.append(
            OidcProvider(
                name="google",
                issuer=GOOGLE_ISSUER,
                client_id=settings.google_client_id,
                client_secret=settings.google_client_secret.get_secret_value(),
            )
        )
    return providers


def policy(settings: AuthSettings) -> AuthPolicy:
    return AuthPolicy(
        email_verification_url=settings.email_verification_url,
        password_reset_url=settings.password_reset_url,
        oauth_redirect_uris=frozenset(settings.oauth_redirect_uris),
        login_per_ip=Limit(settings.login_ip_limit, settings.login_window_s),
        login_per_account=Limit(settings.login_account_limit, settings.login_window_s),
        reset_per_ip=Limit(settings.reset_ip_limit, settings.reset_window_s),
        reset_per_account=Limit(settings.reset_account_limit, settings.reset_window_s),
        reset_answer_floor_s=settings.reset_answer_floor_s,
    )


async def build(settings: AuthSettings, client: AsyncMongoClient[Any], outbox: Outbox) -> Deps:
    """Everything real; the signing key exists before the first request."""
    secrets = [settings.key_encryption_secret.get_secret_value()]
    if settings.key_encryption_secret_previous is not None:
        secrets.append(settings.key_encryption_secret_previous.get_secret_value())
    box = FernetSecretBox(secrets)
    clock = SystemClock()
    ring = KeyRing(
        MongoSigningKeyStore(), box, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    await ring.ensure_key(clock.now())
    return Deps(
        uow=MongoUnitOfWork(client, outbox),
        hasher=Argon2Hasher(settings.argon2_memory_kib, settings.argon2_time_cost),
        box=box,
        tokens=ring,
        limiter=MongoRateLimiter(),
        clock=clock,
        oidc=AuthlibOidcClient(oidc_providers(settings)),
        policy=policy(settings),
    )
