"""OpenID Connect relying party on Authlib: discovery, PKCE S256, ID token checks."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from sonata_auth.domain.errors import (
    OAuthFailedError,
    ProviderUnavailableError,
    UnknownProviderError,
)
from sonata_auth.service_layer.ports import OidcIdentity

# Providers' metadata and keys change rarely; re-read them after this long (seconds).
METADATA_TTL_S = 3600.0
ID_TOKEN_ALGORITHMS = ["RS256", "ES256", "PS256", "EdDSA"]
# Clock skew tolerated between us and the provider when checking exp/iat (seconds).
LEEWAY_S = 60


@dataclass(frozen=True)
class OidcProvider:
    name: str
    issuer: str
    client_id: str
    client_secret: str
    scope: str = "openid email profile"
    discovery_url: str | None = None

    @property
    def metadata_url(self) -> str:
        return self.discovery_url or (self.issuer.rstrip("/") + "/.well-known/openid-configuration")


class AuthlibOidcClient:
    def __init__(self, providers: list[OidcProvider], timeout_s: float = 10.0) -> None:
        self._providers = {p.name: p for p in providers}
        self._timeout = timeout_s
        self._metadata: dict[str, tuple[float, dict[str, Any]]] = {}
        self._jwks: dict[str, tuple[float, KeySet]] = {}
        self._lock = asyncio.Lock()

    def providers(self) -> list[str]:
        return sorted(self._providers)

    def _provider(self, name: str) -> OidcProvider:
        try:
            return self._providers[name]
        except KeyError:
            raise UnknownProviderError(f"no OAuth provider named {name!r}") from None

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.get(url)
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailableError(f"{url}: {exc}") from exc
        if not isinstance(data, dict):
            raise ProviderUnavailableError(f"{url} did not return a JSON object")
        return data

    async def _meta(self, p: OidcProvider) -> dict[str, Any]:
        async with self._lock:
            cached = self._metadata.get(p.name)
            if cached and time.monotonic() - cached[0] < METADATA_TTL_S:
                return cached[1]
            meta = await self._get_json(p.metadata_url)
            if meta.get("issuer") != p.issuer:
                raise ProviderUnavailableError(
                    f"discovery names issuer {meta.get('issuer')!r}, configured {p.issuer!r}"
                )
            self._metadata[p.name] = (time.monotonic(), meta)
            return meta

    async def _keys(self, p: OidcProvider, meta: dict[str, Any], refresh: bool) -> KeySet:
        cached = self._jwks.get(p.name)
        if cached and not refresh and time.monotonic() - cached[0] < METADATA_TTL_S:
            return cached[1]
        try:
            keys = KeySet.import_key_set(await self._get_json(str(meta["jwks_uri"])))  # type: ignore[arg-type]
        except (KeyError, ValueError, JoseError) as exc:
            raise ProviderUnavailableError(f"unusable JWKS from {p.name}: {exc}") from exc
        self._jwks[p.name] = (time.monotonic(), keys)
        return keys

    def _client(self, p: OidcProvider, redirect_uri: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=p.client_id,
            client_secret=p.client_secret,
            scope=p.scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_post",
            timeout=self._timeout,
        )

    async def authorization_url(
        self, provider: str, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        p = self._provider(provider)
        meta = await self._meta(p)
        async with self._client(p, redirect_uri) as client:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"],
                state=state,
                nonce=nonce,
                code_verifier=code_verifier,
            )
        return str(url)

    async def exchange(
        self, provider: str, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcIdentity:
        p = self._provider(provider)
        meta = await self._meta(p)
        try:
            async with self._client(p, redirect_uri) as client:
                token = await client.fetch_token(
                    meta["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except OAuthError as exc:
            raise OAuthFailedError(f"the provider refused the code: {exc.error}") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailableError(f"token endpoint: {exc}") from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OAuthFailedError("the provider returned no id_token")
        claims = await self._verify_id_token(p, meta, id_token, nonce, token.get("access_token"))
        email = claims.get("email")
        name = claims.get("name")
        return OidcIdentity(
            provider=p.name,
            subject=str(claims["sub"]),
            email=email if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
            name=name if isinstance(name, str) else None,
        )

    async def _verify_id_token(
        self,
        p: OidcProvider,
        meta: dict[str, Any],
        id_token: str,
        nonce: str,
        access_token: object,
    ) -> dict[str, Any]:
        try:
            decoded = jwt.decode(
                id_token, await self._keys(p, meta, False), algorithms=ID_TOKEN_ALGORITHMS
            )
        except JoseError:
            # Perhaps a key the provider rotated in since our last read: re-read once.
            try:
                decoded = jwt.decode(
                    id_token, await self._keys(p, meta, True), algorithms=ID_TOKEN_ALGORITHMS
                )
            except JoseError as exc:
                raise OAuthFailedError(f"the id_token does not verify: {exc}") from exc
        params: dict[str, Any] = {"nonce": nonce, "client_id": p.client_id}
        if isinstance(access_token, str):
            params["access_token"] = access_token
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": p.issuer},
                "aud": {"essential": True, "value": p.client_id},
            },
            params=params,
        )
        try:
            claims.validate(now=int(time.time()), leeway=LEEWAY_S)
        except JoseError as exc:
            raise OAuthFailedError(f"the id_token was refused: {exc}") from exc
        return dict(claims)
