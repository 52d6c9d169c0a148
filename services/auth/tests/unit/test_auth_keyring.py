"""Access tokens: header and claims as the fleet expects, rotation, what verification refuses."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import jwt
import pytest
from sonata_auth.adapters.keyring import KeyRing
from sonata_auth.domain.errors import InvalidTokenError
from sonata_auth.domain.model import User


def _user() -> User:
    return User(id="u1", email="a@example.com", created_at=datetime.now(UTC), display_name="A")


async def test_token_header_and_claims_follow_the_fleet_conventions(world):
    ring = world.deps.tokens
    token = await ring.issue(_user(), "fam-1", world.clock.now())
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["iss"] == "sonata-auth"
    assert payload["aud"] == "sonata"
    assert payload["sub"] == "u1"
    assert payload["sid"] == "fam-1"
    assert payload["roles"] == ["student"]
    assert payload["exp"] - payload["iat"] == 600
    assert payload["jti"]
    jwks = await ring.jwks(world.clock.now())
    [key] = jwks["keys"]
    assert key["kid"] == header["kid"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in key


async def test_rotation_keeps_the_old_key_published_until_its_tokens_expired(world):
    ring = world.deps.tokens
    now = world.clock.now()
    old_token = await ring.issue(_user(), "f", now)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new_kid = await ring.rotate(now)
    assert new_kid != old_kid
    new_token = await ring.issue(_user(), "f", now)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert {k["kid"] for k in (await ring.jwks(now))["keys"]} == {old_kid, new_kid}
    assert (await ring.verify(old_token, now)).sub == "u1"

    world.clock.advance(minutes=12)
    later = world.clock.now()
    assert {k["kid"] for k in (await ring.jwks(later))["keys"]} == {new_kid}


async def test_private_keys_are_stored_encrypted(world):
    ring = world.deps.tokens
    await ring.issue(_user(), "f", world.clock.now())
    [stored] = world.keys.keys
    second = KeyRing(world.keys, world.deps.box, issuer="sonata-auth", audience="sonata")
    token = await second.issue(_user(), "f", world.clock.now())
    assert (await ring.verify(token, world.clock.now())).sub == "u1"
    assert stored.public_jwk["x"].encode() not in stored.private_encrypted
    assert len(stored.private_encrypted) > 32


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_alg_none_and_wrong_typ_are_refused(world):
    ring = world.deps.tokens
    good = await ring.issue(_user(), "f", world.clock.now())
    kid = jwt.get_unverified_header(good)["kid"]
    payload = good.split(".")[1]
    none = f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{payload}."
    with pytest.raises(InvalidTokenError, match="algorithm"):
        await ring.verify(none, world.clock.now())
    jwt_typ = f"{_b64({'alg': 'EdDSA', 'typ': 'JWT', 'kid': kid})}.{payload}.{good.split('.')[2]}"
    with pytest.raises(InvalidTokenError, match="type"):
        await ring.verify(jwt_typ, world.clock.now())
    with pytest.raises(InvalidTokenError, match="malformed"):
        await ring.verify("not-a-jwt", world.clock.now())
