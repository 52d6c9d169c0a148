import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from fastapi import APIRouter, Depends
from sonata_kit import (
    CurrentPrincipal,
    Principal,
    ServiceSettings,
    TokenVerifier,
    Unauthorized,
    create_service_app,
    require_roles,
)
from sonata_testing import JwksServer, SigningKey, TokenFactory

router = APIRouter(prefix="/v1")


@router.get("/whoami")
async def whoami(principal: CurrentPrincipal) -> dict[str, Any]:
    return {
        "user_id": principal.user_id,
        "roles": sorted(principal.roles),
        "session_id": principal.session_id,
        "token_id": principal.token_id,
    }


@router.get("/admin-only")
async def admin_only(
    principal: Annotated[Principal, Depends(require_roles("admin"))],
) -> dict[str, str]:
    return {"user_id": principal.user_id}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="module")
def tokens(key: SigningKey) -> TokenFactory:
    return TokenFactory(key)


@pytest.fixture(scope="module")
def jwks(key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([key.jwk]) as server:
        yield server


@pytest.fixture
async def client(jwks: JwksServer) -> AsyncIterator[httpx.AsyncClient]:
    settings = ServiceSettings(environment="test", auth_jwks_url=jwks.url)
    app = create_service_app(settings, service="kit-tokens", title="t", routers=[router])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as c:
        yield c


def _hs256_with_public_key(t: TokenFactory) -> str:
    header = {"alg": "HS256", "typ": "at+jwt", "kid": t.key.kid}
    signing_input = unsigned(header, t.claims())
    secret = json.dumps(t.key.jwk).encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _rs256_other_key(t: TokenFactory) -> str:
    rsa = generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(
        t.claims(), rsa, algorithm="RS256", headers={"typ": "at+jwt", "kid": t.key.kid}
    )


def _with(t: TokenFactory, **changes: Any) -> str:
    claims = t.claims()
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return t.sign(claims)


def _tampered_payload(t: TokenFactory) -> str:
    header, _, signature = t.sign(t.claims(sub="student-1")).split(".")
    forged_claims = b64(json.dumps(t.claims(sub="admin-1", roles=("admin",))).encode())
    return f"{header}.{forged_claims}.{signature}"


def _tampered_signature(t: TokenFactory) -> str:
    head, payload, signature = t.sign().split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    return f"{head}.{payload}.{b64(bytes(raw))}"


NOW = int(time.time())

FORGED: dict[str, tuple[Callable[[TokenFactory], str], str]] = {
    "alg none": (
        lambda t: unsigned({"alg": "none", "typ": "at+jwt", "kid": t.key.kid}, t.claims()) + ".",
        "algorithm 'none' not accepted",
    ),
    "HS256 with the public key as secret": (
        _hs256_with_public_key,
        "algorithm 'HS256' not accepted",
    ),
    "RS256 signed by another key": (_rs256_other_key, "algorithm 'RS256' not accepted"),
    "EdDSA signed by another key under our kid": (
        lambda t: t.sign(headers={"kid": t.key.kid}, key=SigningKey(kid=t.key.kid)),
        "signature does not verify",
    ),
    "wrong issuer": (lambda t: _with(t, iss="evil-auth"), "token from another issuer"),
    "wrong audience": (lambda t: _with(t, aud="billing"), "token is for another audience"),
    "audience list without ours": (
        lambda t: _with(t, aud=["billing", "crm"]),
        "token is for another audience",
    ),
    "typ JWT instead of at+jwt": (
        lambda t: t.sign(headers={"typ": "JWT"}),
        "token type 'JWT' is not at+jwt",
    ),
    "id token typ": (
        lambda t: t.sign(headers={"typ": "id_token+jwt"}),
        "is not at+jwt",
    ),
    "expired": (lambda t: _with(t, iat=NOW - 1200, exp=NOW - 600), "token expired"),
    "nbf in the future": (lambda t: _with(t, nbf=NOW + 3600), "token not valid yet"),
    "unknown kid": (
        lambda t: t.sign(key=SigningKey(kid="attacker-key")),
        "unknown key id 'attacker-key'",
    ),
    "jku header pointing elsewhere": (
        lambda t: t.sign(
            headers={"jku": "http://evil.example/jwks.json"}, key=SigningKey(kid="evil")
        ),
        "unknown key id 'evil'",
    ),
    "no kid": (
        lambda t: jwt.encode(
            t.claims(), t.key.private, algorithm="EdDSA", headers={"typ": "at+jwt"}
        ),
        "token has no key id",
    ),
    "tampered payload": (_tampered_payload, "signature does not verify"),
    "tampered signature": (_tampered_signature, "signature does not verify"),
    "missing sub": (lambda t: _with(t, sub=None), "lacks the 'sub' claim"),
    "missing exp": (lambda t: _with(t, exp=None), "lacks the 'exp' claim"),
    "missing iat": (lambda t: _with(t, iat=None), "lacks the 'iat' claim"),
    "roles not a list": (lambda t: _with(t, roles="admin"), "roles must be a list"),
    "not a JWT at all": (lambda t: "definitely-not-a-token", "malformed token"),
}


@pytest.mark.parametrize("case", sorted(FORGED))
async def test_forged_token_is_rejected_with_a_reason(
    client: httpx.AsyncClient, tokens: TokenFactory, case: str
) -> None:
    make, reason = FORGED[case]
    response = await client.get("/v1/whoami", headers={"Authorization": f"Bearer {make(tokens)}"})
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_token"
    assert reason in body["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_valid_token_gives_the_principal(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    claims = tokens.claims(sub="user-7", roles=("student", "parent"))
    response = await client.get(
        "/v1/whoami", headers={"Authorization": f"Bearer {tokens.sign(claims)}"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "user_id": "user-7",
        "roles": ["parent", "student"],
        "session_id": claims["sid"],
        "token_id": claims["jti"],
    }


async def test_missing_or_non_bearer_credentials(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/whoami")
    assert missing.status_code == 401
    assert missing.json()["error"] == "missing_token"
    basic = await client.get("/v1/whoami", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


async def test_require_roles(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    student = tokens.sign(tokens.claims(roles=("student",)))
    admin = tokens.sign(tokens.claims(sub="boss", roles=("admin",)))
    refused = await client.get("/v1/admin-only", headers={"Authorization": f"Bearer {student}"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "forbidden", "detail": "requires one of the roles: admin"}
    allowed = await client.get("/v1/admin-only", headers={"Authorization": f"Bearer {admin}"})
    assert allowed.json() == {"user_id": "boss"}


async def test_jwks_is_cached_and_refreshed_once_on_unknown_kid(key: SigningKey) -> None:
    now = [1000.0]
    with JwksServer([key.jwk]) as server:
        verifier = TokenVerifier(
            server.url, "sonata-auth", "sonata", min_refresh_interval=10.0, clock=lambda: now[0]
        )
        old = TokenFactory(key)
        for _ in range(5):
            assert (await verifier.verify(old.sign())).user_id == "user-1"
        assert server.requests == 1

        rotated = SigningKey()
        server.keys = [rotated.jwk, key.jwk]  # auth keeps the previous key during rotation
        now[0] += 11
        new = TokenFactory(rotated)
        assert (await verifier.verify(new.sign())).user_id == "user-1"
        assert server.requests == 2
        assert (await verifier.verify(old.sign())).user_id == "user-1"

        # A flood of unknown kids within the interval never hammers auth.
        now[0] += 1
        for n in range(20):
            with pytest.raises(Exception, match="unknown key id"):
                await verifier.verify(TokenFactory(SigningKey(kid=f"k{n}")).sign())
        assert server.requests == 2
        now[0] += 10
        for n in range(5):
            with pytest.raises(Exception, match="unknown key id"):
                await verifier.verify(TokenFactory(SigningKey(kid=f"late{n}")).sign())
        assert server.requests == 3


async def test_keys_expire_after_the_ttl(key: SigningKey) -> None:
    now = [0.0]
    with JwksServer([key.jwk]) as server:
        verifier = TokenVerifier(
            server.url, "sonata-auth", "sonata", cache_ttl=300.0, clock=lambda: now[0]
        )
        token = TokenFactory(key).sign()
        await verifier.verify(token)
        now[0] += 299
        await verifier.verify(token)
        assert server.requests == 1
        now[0] += 2
        await verifier.verify(token)
        assert server.requests == 2


async def test_requests_racing_the_first_key_fetch_all_wait_for_it(key: SigningKey) -> None:
    with JwksServer([key.jwk]) as server:
        verifier = TokenVerifier(server.url, "sonata-auth", "sonata")
        tokens = TokenFactory(key)
        principals = await asyncio.gather(*(verifier.verify(tokens.sign()) for _ in range(20)))
        assert [p.user_id for p in principals] == ["user-1"] * 20
        assert server.requests == 1


async def test_a_token_verified_before_is_refused_once_expired_or_its_key_withdrawn(
    key: SigningKey,
) -> None:
    tokens = TokenFactory(key)
    exp = int(time.time()) + 2
    soon = tokens.sign({**tokens.claims(), "exp": exp})
    other = SigningKey()
    with JwksServer([key.jwk, other.jwk]) as server:
        now = [0.0]
        verifier = TokenVerifier(
            server.url, "sonata-auth", "sonata", cache_ttl=300.0, clock=lambda: now[0]
        )
        assert (await verifier.verify(soon)).user_id == "user-1"
        assert (await verifier.verify(soon)).user_id == "user-1"  # verified before
        await asyncio.sleep(max(0.0, exp + 0.5 - time.time()))  # until its exp has passed
        with pytest.raises(Unauthorized, match="token expired"):
            await verifier.verify(soon)

        later = TokenFactory(other).sign()
        assert (await verifier.verify(later)).user_id == "user-1"
        server.keys = [key.jwk]  # the other key is withdrawn; the key set goes stale
        now[0] += 301
        with pytest.raises(Unauthorized, match="unknown key id"):
            await verifier.verify(later)
