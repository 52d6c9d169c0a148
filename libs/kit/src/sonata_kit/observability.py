"""Request id and Prometheus HTTP figures, as one pure ASGI middleware."""

from __future__ import annotations

import re
import time
import uuid

from prometheus_client import Counter, Histogram
from sonata_messaging import correlation_scope
from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

HTTP_REQUESTS = Counter(
    "sonata_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "sonata_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def request_id_from(raw: str | None) -> str:
    if raw and _SANE_REQUEST_ID.match(raw):
        return raw
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> str:
    routed = scope.get("route")
    if routed is not None and hasattr(routed, "path"):
        return str(routed.path)
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                raw = value.decode("latin-1")
                break
        request_id = request_id_from(raw)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            with correlation_scope(request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            route = _route_template(scope)
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, route).observe(time.perf_counter() - started)
