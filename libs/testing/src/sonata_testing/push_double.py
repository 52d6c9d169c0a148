"""A local web push service: accepts the encrypted POST a browser's push service would.

``subscription()`` makes a browser-side key pair and returns what the browser would hand the
application (endpoint, p256dh, auth). A POST to the endpoint must carry a VAPID
``Authorization`` header and an aes128gcm body; the double decrypts it with the subscription's
private key and keeps the plaintext. ``answer[endpoint] = 404 or 410`` makes it refuse.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sonata_testing.infra import free_port


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


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
        self._keys: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
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

    def subscription(self) -> dict[str, Any]:
        """A new browser subscription, as ``PushSubscription.toJSON()`` returns it."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = uuid.uuid4().bytes
        endpoint = f"{self.url}/push/{uuid.uuid4().hex}"
        with self.lock:
            self._keys[endpoint] = (key, auth)
        public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {"endpoint": endpoint, "keys": {"p256dh": _b64(public), "auth": _b64(auth)}}

    def received(self, endpoint: str | None = None) -> list[Delivered]:
        with self.lock:
            return [d for d in self.delivered if endpoint is None or d.endpoint == endpoint]

    def _accept(self, endpoint: str, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            keys = self._keys.get(endpoint)
            status = self.answer.get(endpoint, 201)
        if keys is None:
            return 404
        if not headers.get("authorization", "").startswith("vapid t="):
            return 401
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
