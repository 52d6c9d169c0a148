"""A local OpenID Connect provider speaking the wire format, run as a real HTTP server.

Discovery, an authorize endpoint that signs in a configured user and redirects with code and
state, a token endpoint (client secret, exact redirect_uri, PKCE S256) returning an RS256
id_token, the JWKS and userinfo. Knobs let a test make it misbehave (a wrong nonce).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from sonata_testing import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str
    user: dict[str, Any]
    used: bool = False


@dataclass
class LocalOidcProvider:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    user: dict[str, Any] = field(default_factory=dict)
    # When set, the id_token carries this nonce instead of the one the client sent.
    nonce_override: str | None = None
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1", "use": "sig"})
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
                Route("/userinfo", self.userinfo),
            ]
        )

    def start(self) -> LocalOidcProvider:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the OIDC provider did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "scopes_supported": ["openid", "email", "profile"],
            }
        )

    def _error(self, error: str, description: str, status: int = 400) -> Response:
        return JSONResponse({"error": error, "error_description": description}, status)

    async def authorize(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.authorize_requests.append(q)
        if q.get("client_id") != self.client_id:
            return self._error("unauthorized_client", "unknown client_id")
        # Never redirect to an unregistered URI: answer here instead (RFC 6749 4.1.2.1).
        if q.get("redirect_uri") not in self.redirect_uris:
            return self._error("invalid_request", "redirect_uri is not registered")
        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return self._error("invalid_request", "response_type=code and scope openid needed")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return self._error("invalid_request", "PKCE with S256 is required")
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            client_id=q["client_id"],
            redirect_uri=q["redirect_uri"],
            nonce=q.get("nonce"),
            code_challenge=q["code_challenge"],
            user=dict(self.user),
        )
        back = {"code": code, "state": q.get("state", "")}
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(back)}", status_code=302)

    def _client_credentials(self, request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            raw = base64.b64decode(header[6:]).decode()
            client_id, _, secret = raw.partition(":")
            return client_id, secret
        return form.get("client_id", ""), form.get("client_secret", "")

    async def token(self, request: Request) -> Response:
        # application/x-www-form-urlencoded, as RFC 6749 section 4.1.3 prescribes.
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_requests.append(form)
        client_id, secret = self._client_credentials(request, form)
        if (client_id, secret) != (self.client_id, self.client_secret):
            return self._error("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            return self._error("unsupported_grant_type", "only authorization_code")
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.used or grant.client_id != client_id:
            return self._error("invalid_grant", "unknown or used code")
        grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._error("invalid_grant", "redirect_uri differs from the authorize request")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if challenge != grant.code_challenge:
            return self._error("invalid_grant", "PKCE verification failed")
        access_token = secrets.token_urlsafe(24)
        self.access_tokens[access_token] = grant.user
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": grant.user["sub"],
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce_override or grant.nonce,
            **{k: v for k, v in grant.user.items() if k != "sub"},
        }
        id_token = jwt.encode({"alg": "RS256", "kid": "idp-key-1"}, claims, self.key)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "openid email profile",
                "id_token": id_token,
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def userinfo(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        user = self.access_tokens.get(token)
        if user is None:
            return self._error("invalid_token", "unknown access token", 401)
        return JSONResponse(user)
