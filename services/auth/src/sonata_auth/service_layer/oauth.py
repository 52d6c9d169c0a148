"""OAuth 2 / OpenID Connect login: authorization code with PKCE S256, state and nonce."""

from __future__ import annotations

import secrets

from sonata_contracts.auth import UserRegistered

from sonata_auth.domain.errors import (
    ConflictError,
    InvalidOAuthStateError,
    OAuthFailedError,
    RedirectUriMismatchError,
    UnknownProviderError,
)
from sonata_auth.domain.model import (
    OAUTH_STATE_TTL,
    AuditEvent,
    OAuthAccount,
    OAuthState,
    User,
    normalize_email,
)
from sonata_auth.service_layer.deps import Deps, audit, hash_secret, new_id
from sonata_auth.service_layer.ports import OidcIdentity, Tx
from sonata_auth.service_layer.sessions import LoginResult, finish_login


def _check(d: Deps, provider: str, redirect_uri: str) -> None:
    if provider not in d.oidc.providers():
        raise UnknownProviderError(f"no OAuth provider named {provider!r} is configured")
    # Exact string match: no prefix, no normalisation, so no open redirect through a lookalike.
    if redirect_uri not in d.policy.oauth_redirect_uris:
        raise RedirectUriMismatchError()


async def begin(d: Deps, provider: str, redirect_uri: str) -> str:
    """The provider's authorization URL; the state remembers nonce, verifier and redirect."""
    _check(d, provider, redirect_uri)
    now = d.clock.now()
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    # RFC 7636: 43-128 characters from the unreserved set.
    verifier = secrets.token_urlsafe(64)

    async def remember(tx: Tx) -> None:
        await tx.oauth_states.add(
            OAuthState(
                state_hash=hash_secret(state),
                provider=provider,
                nonce=nonce,
                code_verifier=verifier,
                redirect_uri=redirect_uri,
                created_at=now,
                expires_at=now + OAUTH_STATE_TTL,
            )
        )

    await d.uow.run(remember)
    return await d.oidc.authorization_url(provider, redirect_uri, state, nonce, verifier)


async def _user_for_identity(d: Deps, tx: Tx, identity: OidcIdentity) -> tuple[User, bool]:
    """Find the linked user, link a verified match, or create one; True when newly linked."""
    linked = await tx.oauth_accounts.get(identity.provider, identity.subject)
    if linked is not None:
        user = await tx.users.get(linked.user_id)
        if user is not None:
            return user, False
    now = d.clock.now()
    email = normalize_email(identity.email) if identity.email else None
    if email is None:
        raise OAuthFailedError("the identity provider did not share an email address")
    user = await tx.users.get_by_email(email)
    if user is not None:
        # Linking on an unverified address on either side would hand the account to
        # whoever typed the address first.
        if not (identity.email_verified and user.email_verified):
            raise ConflictError(
                "an account with this email exists; log in with its password to link it"
            )
    else:
        user = User(
            id=new_id(),
            email=email,
            created_at=now,
            display_name=identity.name or email.split("@", 1)[0],
            email_verified=identity.email_verified,
        )
        await tx.users.add(user)
        await audit(tx, AuditEvent.SIGNUP, user.id, now, None, provider=identity.provider)
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
    await tx.oauth_accounts.add(
        OAuthAccount(
            provider=identity.provider,
            subject=identity.subject,
            user_id=user.id,
            email=email,
            linked_at=now,
        )
    )
    await audit(tx, AuditEvent.OAUTH_LINKED, user.id, now, None, provider=identity.provider)
    return user, True


async def complete(
    d: Deps, provider: str, code: str, state: str, redirect_uri: str, ip: str | None
) -> LoginResult:
    _check(d, provider, redirect_uri)

    async def take(tx: Tx) -> OAuthState | None:
        return await tx.oauth_states.pop(hash_secret(state))

    remembered = await d.uow.run(take)
    now = d.clock.now()
    if remembered is None or remembered.provider != provider or now >= remembered.expires_at:
        raise InvalidOAuthStateError()
    if remembered.redirect_uri != redirect_uri:
        raise RedirectUriMismatchError("redirect_uri differs from the one the login started with")
    identity = await d.oidc.exchange(
        provider, code, redirect_uri, remembered.code_verifier, remembered.nonce
    )

    async def link(tx: Tx) -> User:
        user, _ = await _user_for_identity(d, tx, identity)
        return user

    user = await d.uow.run(link)
    return await finish_login(d, user, ip, f"oauth:{provider}", event=AuditEvent.OAUTH_LOGIN)
