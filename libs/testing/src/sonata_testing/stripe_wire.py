"""Stripe's wire format for the local test double: form bodies, errors, signatures, the server."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DAY_S = 86_400
Obj = dict[str, Any]
# (method, path, lower-cased headers, body) -> (status, JSON object)
Route = Callable[[str, str, dict[str, str], str], tuple[int, Obj]]


@dataclass(frozen=True)
class Price:
    id: str
    unit_amount: int
    currency: str = "eur"
    interval: str | None = None  # "month" / "year" for subscriptions, None for one-time


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str = ""):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def body(self) -> Obj:
        error: Obj = {"type": "invalid_request_error", "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}


def sign(payload: str, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value: ``t=<unix>,v1=<HMAC-SHA256 of "t.payload">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def parse_form(body: str) -> Obj:
    """Stripe's form encoding (``a[b][0][c]=v``) back into nested dicts and lists."""
    root: Obj = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node: Any = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    nested: Obj = _lists(root)
    return nested


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def public(obj: Obj) -> Obj:
    """A snapshot without the double's own bookkeeping fields."""
    return {k: v for k, v in json.loads(json.dumps(obj)).items() if not k.startswith("_")}


def interval_s(price: Price) -> int:
    return 365 * DAY_S if price.interval == "year" else 30 * DAY_S


def handler_for(route: Route) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            url = urlsplit(self.path)
            if url.query and not body:
                body = url.query
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, result = route(self.command, url.path, headers, body)
            data = json.dumps(result).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve  # noqa: N815 - the names http.server calls

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
