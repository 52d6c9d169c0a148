"""Verification of auth's access tokens against its JWKS, and the FastAPI dependencies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sonata_kit.errors import Forbidden, ServiceUnavailable, Unauthorized

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: frozenset[str]
    session_id: str | None
    token_id: str | None


def _invalid(reason: str) -> Unauthorized:
    return Unauthorized(reason, code="invalid_token")


class TokenVerifier:
    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        audience: str,
        *,
        cache_ttl: float = 300.0,
        min_refresh_interval: float = 10.0,
        leeway: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.cache_ttl = cache_ttl
        self.min_refresh_interval = min_refresh_interval
        self.leeway = leeway
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        # Tokens already verified: (principal, exp, kid). Served again only while unexpired, with
        # the key set fresh (else the full check refetches it) and their key still in it.
        self._verified: dict[str, tuple[Principal, float, str]] = {}
        self.max_verified = 10_000
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires, key_id = known
            fresh = self._fetched_at is not None and (
                self._clock() - self._fetched_at <= self.cache_ttl
            )
            if fresh and key_id in self._keys and time.time() < expires + self.leeway:
                return principal
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _invalid(f"malformed token: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise _invalid(f"algorithm {header.get('alg')!r} not accepted")
        if header.get("typ") != TOKEN_TYPE:
            raise _invalid(f"token type {header.get('typ')!r} is not {TOKEN_TYPE}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("token has no key id")
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("token expired") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("token not valid yet") from None
        except jwt.InvalidAudienceError:
            raise _invalid("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise _invalid("token from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise _invalid("signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise _invalid(f"invalid token: {exc}") from None
        principal = _principal(claims)
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            if len(self._verified) >= self.max_verified:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = (principal, float(exp), kid)
        return principal

    async def _key(self, kid: str) -> jwt.PyJWK:
        # With no keys yet, wait for a fetch already under way rather than answering 503.
        if self._needs_refresh(kid) or not self._keys:
            async with self._lock:
                if self._needs_refresh(kid):
                    await self._refresh()
        key = self._keys.get(kid)
        if key is None and not self._keys:
            raise ServiceUnavailable("signing keys not available yet", code="jwks_unavailable")
        if key is None:
            raise _invalid(f"unknown key id {kid!r}")
        return key

    def _needs_refresh(self, kid: str) -> bool:
        now = self._clock()
        if self._fetched_at is None and not self._keys:
            return self._last_attempt is None or now - self._last_attempt >= 1.0
        may = self._last_attempt is None or now - self._last_attempt >= self.min_refresh_interval
        stale = self._fetched_at is None or now - self._fetched_at > self.cache_ttl
        return may and (stale or kid not in self._keys)

    async def _refresh(self) -> None:
        self._last_attempt = self._clock()
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(self.jwks_url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            if self._keys:
                return  # keep verifying with the keys we have; retried after the interval
            raise ServiceUnavailable(
                f"cannot fetch signing keys: {exc}", code="jwks_unavailable"
            ) from None
        self._keys = _eddsa_keys(document)
        self._fetched_at = self._last_attempt


def _eddsa_keys(document: Any) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    entries = document.get("keys", []) if isinstance(document, dict) else []
    for entry in entries:
        if (
            not isinstance(entry, dict)
            or entry.get("kty") != "OKP"
            or entry.get("crv") != "Ed25519"
        ):
            continue
        if entry.get("alg", ALGORITHM) != ALGORITHM or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if isinstance(kid, str) and kid:
            try:
                keys[kid] = jwt.PyJWK(entry, algorithm=ALGORITHM)
            except jwt.PyJWTError:
                continue
    return keys


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _invalid("token subject is empty")
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise _invalid("token roles must be a list of strings")
    sid = claims.get("sid")
    jti = claims.get("jti")
    return Principal(
        user_id=sub,
        roles=frozenset(roles),
        session_id=sid if isinstance(sid, str) else None,
        token_id=jti if isinstance(jti, str) else None,
    )


_bearer = HTTPBearer(auto_error=False, description="Access token from the auth service")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer access token is required", code="missing_token")
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.verify(credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting a principal holding at least one of ``roles``."""
    wanted = frozenset(roles)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.roles & wanted:
            raise Forbidden(f"requires one of the roles: {', '.join(sorted(wanted))}")
        return principal

    return dependency
