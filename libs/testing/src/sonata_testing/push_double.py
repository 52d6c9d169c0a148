"""A local web push service: accepts the encrypted POST a browser's push service would.

``subscription()`` makes a browser-side key pair and returns what the browser would hand the
application (endpoint, p256dh, auth). A POST to the endpoint must carry an RFC 8292 VAPID
``Authorization: vapid t=<JWT>,k=<public key>`` header and an aes128gcm body. The JWT must be
ES256-signed by ``k``'s key (else 401), with ``aud`` the endpoint's origin, an ``exp`` in the
next 24 hours and a ``sub``, and ``k`` must be the application server key the subscription was
made with, when it was given one (else 403). The double then decrypts the body with the
subscription's private key and keeps the plaintext. ``answer[endpoint] = 404 or 410`` makes it
refuse.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sonata_testing.infra import free_port


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vapid_problem(
    authorization: str, endpoint: str, server_key: str | None, now: float | None = None
) -> tuple[int, str] | None:
    """(status, why) when the header fails RFC 8292, None when it passes."""
    if not authorization.startswith("vapid "):
        return 401, "no VAPID authorization"
    params = dict(
        part.strip().split("=", 1) for part in authorization[6:].split(",") if "=" in part
    )
    token, k = params.get("t", ""), params.get("k", "")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(k))
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(claims_b64))
        signature = _unb64(signature_b64)
    except (ValueError, binascii.Error):
        return 401, "malformed VAPID token or key"
    if header.get("alg") != "ES256" or len(signature) != 64:
        return 401, "the VAPID token is not ES256"
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return 401, "the VAPID signature does not match k"
    scheme, _, rest = endpoint.partition("://")
    origin = f"{scheme}://{rest.split('/', 1)[0]}"
    at = time.time() if now is None else now
    if claims.get("aud") != origin:
        return 403, f"aud {claims.get('aud')!r} is not {origin!r}"
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or not at < exp <= at + 24 * 3600:
        return 403, "exp is not within the next 24 hours"
    if not claims.get("sub"):
        return 403, "no sub claim"
    if server_key is not None and k.rstrip("=") != server_key.rstrip("="):
        return 403, "k is not the application server key of this subscription"
    return None


@dataclass
class Delivered:
    endpoint: str
    payload: dict[str, Any]
    headers: dict[str, str]


class PushDouble:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.delivered: list[Delivered] = []
        self.answer: dict[str, int] = {}
        self.refusals: list[tuple[str, int]] = []  # (endpoint, status) answered other than 201
        self.vapid_refusals: list[tuple[str, int, str]] = []  # (endpoint, status, why)
        self._keys: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self._server_keys: dict[str, str] = {}
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> PushDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PushDouble:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def subscription(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A new browser subscription, as ``PushSubscription.toJSON()`` returns it; with
        ``application_server_key`` (the VAPID public key, base64url) only pushes signed by that
        key are taken, as browsers subscribe with one."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = uuid.uuid4().bytes
        endpoint = f"{self.url}/push/{uuid.uuid4().hex}"
        with self.lock:
            self._keys[endpoint] = (key, auth)
            if application_server_key is not None:
                self._server_keys[endpoint] = application_server_key
        public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {"endpoint": endpoint, "keys": {"p256dh": _b64(public), "auth": _b64(auth)}}

    def received(self, endpoint: str | None = None) -> list[Delivered]:
        with self.lock:
            return [d for d in self.delivered if endpoint is None or d.endpoint == endpoint]

    def _accept(self, endpoint: str, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            keys = self._keys.get(endpoint)
            status = self.answer.get(endpoint, 201)
            server_key = self._server_keys.get(endpoint)
        if keys is None:
            return 404
        problem = vapid_problem(headers.get("authorization", ""), endpoint, server_key)
        if problem is not None:
            with self.lock:
                self.vapid_refusals.append((endpoint, *problem))
            return problem[0]
        if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
            return 400
        if status != 201:
            with self.lock:
                self.refusals.append((endpoint, status))
            return status
        private_key, auth = keys
        plain = http_ece.decrypt(body, private_key=private_key, auth_secret=auth)
        with self.lock:
            self.delivered.append(Delivered(endpoint, json.loads(plain), headers))
        return 201

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = double._accept(f"{double.url}{self.path}", body, headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
