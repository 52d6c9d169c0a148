"""Serving read answers from the read cache, with ETags so a client can revalidate for free."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Request, Response
from pydantic import TypeAdapter
from sonata_kit import Principal, ServiceError
from starlette.types import ASGIApp, Receive, Scope, Send

from sonata_db.adapters.read_cache import Cached, ReadCache

T = TypeVar("T")
CACHE_CONTROL = "private, no-cache"  # a browser may keep it but asks again (If-None-Match)
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "unchanged (If-None-Match)"}}


async def get_reads(request: Request) -> ReadCache:
    return cast(ReadCache, request.app.state.reads)


Reads = Annotated[ReadCache, Depends(get_reads)]


async def cached_json(
    request: Request,
    principal: Principal,
    reads: ReadCache,
    adapter: TypeAdapter[T],
    compute: Callable[[], Awaitable[T]],
) -> Response:
    """The caller's answer for this path and query: from the cache while no write it depends
    on has committed since, else computed, rendered once and kept."""
    key = key_of(request.scope, principal)

    async def render() -> bytes:
        return adapter.dump_json(await compute())

    return answer(request, await reads.answer(key, principal.user_id, render))


def key_of(scope: Scope, principal: Principal) -> tuple[str, ...]:
    """What a kept answer is filed under: the path and query as sent, and who asked."""
    return (
        scope["path"],
        scope["query_string"].decode("latin-1"),
        principal.user_id,
        ",".join(sorted(principal.roles)),
    )


def answer(request: Request, entry: Cached) -> Response:
    headers = {"ETag": entry.etag, "Cache-Control": CACHE_CONTROL}
    wanted = request.headers.get("if-none-match")
    if wanted is not None and _matches(wanted, entry.etag):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type="application/json", headers=headers)


class KeptAnswers:
    """Serves a GET whose answer is kept straight from the cache, before routing and
    dependencies: the same bytes and headers the route would send, for the same verified
    caller. Anything else (no or bad token, nothing kept) goes on to the routes unchanged."""

    def __init__(self, app: ASGIApp, reads: ReadCache) -> None:
        self.app = app
        self.reads = reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = None
        wanted = None
        if scope["type"] == "http" and scope["method"] == "GET":
            token = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    scheme, _, token = value.decode("latin-1").partition(" ")
                    token = token.strip() if scheme.lower() == "bearer" else None
                elif name == b"if-none-match":
                    wanted = value.decode("latin-1")
            if token:
                try:
                    principal = await scope["app"].state.verifier.verify(token)
                except ServiceError:
                    principal = None  # the route answers it (401, 503)
                if principal is not None:
                    entry = self.reads.get(key_of(scope, principal), principal.user_id)
        if entry is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"etag", entry.etag.encode()), (b"cache-control", CACHE_CONTROL.encode())]
        if wanted is not None and _matches(wanted, entry.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(entry.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": entry.body})


def _matches(if_none_match: str, etag: str) -> bool:
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags
