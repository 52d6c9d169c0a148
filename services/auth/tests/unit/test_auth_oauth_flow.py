"""OAuth/OIDC login use cases: exact redirect match, single-use state, linking rules."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sonata_auth.domain.errors import (
    ConflictError,
    InvalidOAuthStateError,
    RedirectUriMismatchError,
    UnknownProviderError,
)
from sonata_auth.service_layer import accounts, oauth, sessions
from sonata_auth.service_layer.ports import OidcIdentity
from sonata_contracts.auth import EmailVerificationRequested, UserRegistered

# Registered in the world fixture's policy.
REDIRECT = "https://app.example/oauth/callback"
PASSWORD = "correct horse battery"


def _state(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def _identity(email: str, verified: bool = True, subject: str = "sub-1") -> OidcIdentity:
    return OidcIdentity("acme", subject, email, verified, "Ada L.")


async def test_first_oauth_login_creates_a_verified_account(world):
    url = await oauth.begin(world.deps, "acme", REDIRECT)
    world.oidc.identities["code-1"] = _identity("ada@example.com")
    result = await oauth.complete(world.deps, "acme", "code-1", _state(url), REDIRECT, None)
    assert result.status == sessions.LoginStatus.OK
    claims = await sessions.authenticate(world.deps, result.tokens.access_token)
    user = world.uow.store.users[claims.sub]
    assert user.email_verified
    assert user.password_hash is None
    assert [e.user_id for e in world.uow.events(UserRegistered)] == [claims.sub]

    again = await oauth.begin(world.deps, "acme", REDIRECT)
    world.oidc.identities["code-2"] = _identity("ada@example.com")
    second = await oauth.complete(world.deps, "acme", "code-2", _state(again), REDIRECT, None)
    assert (await sessions.authenticate(world.deps, second.tokens.access_token)).sub == claims.sub
    assert len(world.uow.store.users) == 1


async def test_links_to_an_existing_verified_account_by_verified_email(world):
    await accounts.signup(
        world.deps, "ada@example.com", "correct horse battery", None, "en", "UTC", None
    )
    token = world.uow.events(EmailVerificationRequested)[-1]
    await accounts.verify_email(world.deps, token.token, None)
    url = await oauth.begin(world.deps, "acme", REDIRECT)
    world.oidc.identities["c"] = _identity("Ada@Example.com")
    result = await oauth.complete(world.deps, "acme", "c", _state(url), REDIRECT, None)
    claims = await sessions.authenticate(world.deps, result.tokens.access_token)
    assert claims.sub == token.user_id
    assert [a.user_id for a in world.uow.store.oauth_accounts] == [token.user_id]


async def test_never_links_on_an_unverified_email(world):
    await accounts.signup(
        world.deps, "ada@example.com", "correct horse battery", None, "en", "UTC", None
    )
    url = await oauth.begin(world.deps, "acme", REDIRECT)
    world.oidc.identities["c"] = _identity("ada@example.com", verified=True)
    with pytest.raises(ConflictError):
        await oauth.complete(world.deps, "acme", "c", _state(url), REDIRECT, None)
    assert world.uow.store.oauth_accounts == []


async def test_redirect_uri_must_match_exactly(world):
    for near_miss in (
        REDIRECT + "/",
        REDIRECT + "?x=1",
        REDIRECT.upper(),
        "https://evil.example/cb",
    ):
        with pytest.raises(RedirectUriMismatchError):
            await oauth.begin(world.deps, "acme", near_miss)
    with pytest.raises(UnknownProviderError):
        await oauth.begin(world.deps, "nope", REDIRECT)


async def test_state_is_single_use_and_bound_to_the_provider(world):
    url = await oauth.begin(world.deps, "acme", REDIRECT)
    world.oidc.identities["c"] = _identity("ada@example.com")
    with pytest.raises(InvalidOAuthStateError):
        await oauth.complete(world.deps, "acme", "c", "forged-state", REDIRECT, None)
    await oauth.complete(world.deps, "acme", "c", _state(url), REDIRECT, None)
    with pytest.raises(InvalidOAuthStateError):
        await oauth.complete(world.deps, "acme", "c", _state(url), REDIRECT, None)


async def test_state_expires(world):
    url = await oauth.begin(world.deps, "acme", REDIRECT)
    world.clock.advance(minutes=11)
    world.oidc.identities["c"] = _identity("ada@example.com")
    with pytest.raises(InvalidOAuthStateError):
        await oauth.complete(world.deps, "acme", "c", _state(url), REDIRECT, None)
