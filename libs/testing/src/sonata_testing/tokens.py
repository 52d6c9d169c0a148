"""Access tokens signed like auth signs them, and a JWKS served over real HTTP, for tests of
services that verify tokens without running auth."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm


class SigningKey:
    """An Ed25519 key with a kid; ``jwk`` is its public half as auth publishes it."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex[:16]
        self.private = Ed25519PrivateKey.generate()
        public: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        self.jwk = {**public, "kid": self.kid, "alg": "EdDSA", "use": "sig"}


class TokenFactory:
    def __init__(self, key: SigningKey, issuer: str = "sonata-auth", audience: str = "sonata"):
        self.key = key
        self.issuer = issuer
        self.audience = audience

    def claims(self, sub: str = "user-1", roles: tuple[str, ...] = ("student",)) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "roles": list(roles),
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "sid": uuid.uuid4().hex,
        }

    def sign(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, Any] | None = None,
        key: SigningKey | None = None,
    ) -> str:
        signer = key or self.key
        return jwt.encode(
            dict(claims if claims is not None else self.claims()),
            signer.private,
            algorithm="EdDSA",
            headers={"typ": "at+jwt", "kid": signer.kid, **(headers or {})},
        )


class JwksServer:
    """Serves ``{"keys": [...]}`` at ``url`` on a loopback port; ``keys`` may be changed live."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
