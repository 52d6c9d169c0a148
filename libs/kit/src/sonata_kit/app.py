"""The app factory: one FastAPI app per service with the fleet's plumbing wired in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import aio_pika
from beanie import Document, init_beanie
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sonata_messaging import (
    Consumer,
    Handler,
    HandlerSpec,
    Outbox,
    OutboxRelay,
    Transaction,
    run_in_transaction,
)
from sonata_messaging.relay import raise_if_cancelling

from sonata_kit.errors import ServiceUnavailable, error_response, install_error_handlers
from sonata_kit.logging import configure_logging
from sonata_kit.observability import RequestContextMiddleware
from sonata_kit.settings import ServiceSettings
from sonata_kit.tokens import TokenVerifier

log = logging.getLogger("sonata.kit.app")
T = TypeVar("T")


class BrokerMonitor:
    """Keeps one connection to RabbitMQ open so readiness can tell whether the broker answers."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.problem: str | None = "not connected yet"

    async def run(self) -> None:
        backoff = 0.2
        while True:
            raise_if_cancelling()
            try:
                connection = await aio_pika.connect(self.amqp_url, timeout=5)
            except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
                raise_if_cancelling(exc)
                self.problem = f"cannot connect: {exc}"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            # `connection.closed()` resolves only on our own close(), never when the broker goes
            # away; the close callbacks run on both.
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            # `lost` bound now: a late callback of this connection must not end the next one.
            def on_close(*_: object, lost: asyncio.Future[None] = lost) -> None:
                if not lost.done():
                    lost.set_result(None)

            connection.close_callbacks.add(on_close)
            self.problem = None
            try:
                await lost
                self.problem = "connection lost"
            finally:
                with suppress(Exception):
                    await connection.close()


@dataclass
class Runtime:
    service: str
    settings: ServiceSettings
    client: AsyncMongoClient[Any]
    database: AsyncDatabase[Any]
    outbox: Outbox
    verifier: TokenVerifier
    broker: BrokerMonitor
    consumer: Consumer | None = None

    async def transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        return await run_in_transaction(self.client, fn, outbox=self.outbox)

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.client.admin.command("ping"), timeout=2.0)
            checks["mongodb"] = "ok"
        except Exception as exc:
            checks["mongodb"] = f"unreachable: {type(exc).__name__}"
        checks["amqp"] = self.broker.problem or "ok"
        if self.consumer is not None:
            checks["consumer"] = "ok" if self.consumer.consuming else "not consuming yet"
        return checks


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ServiceUnavailable("the service is starting", code="starting")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def _supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Keep a background loop alive: an unexpected crash is logged and the loop restarted."""
    delay = 0.5
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in %.1fs", name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def create_service_app(
    settings: ServiceSettings,
    *,
    service: str,
    title: str,
    version: str = "0.1.0",
    description: str = "",
    documents: Sequence[type[Document]] = (),
    routers: Sequence[APIRouter] = (),
    handlers: Sequence[HandlerSpec] = (),
    catch_all: Handler | None = None,
    publishes: bool = False,
    on_startup: Callable[[Runtime], Awaitable[None]] | None = None,
) -> FastAPI:
    verifier = TokenVerifier(
        settings.auth_jwks_url,
        settings.jwt_issuer,
        settings.jwt_audience,
        cache_ttl=settings.jwks_cache_ttl_s,
        min_refresh_interval=settings.jwks_min_refresh_interval_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service, settings.log_level)
        client: AsyncMongoClient[Any] = AsyncMongoClient(
            settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000
        )
        database = client[settings.mongodb_db]
        await init_beanie(database=database, document_models=list(documents))
        outbox = Outbox(database, service)
        if publishes:
            await outbox.ensure_indexes()
        broker = BrokerMonitor(settings.amqp_url)
        runtime = Runtime(service, settings, client, database, outbox, verifier, broker)
        loops: dict[str, Callable[[], Awaitable[None]]] = {"broker monitor": broker.run}
        if publishes:
            relay = OutboxRelay(
                outbox, settings.amqp_url, poll_interval=settings.relay_poll_interval_s
            )
            loops["outbox relay"] = relay.run
        if handlers or catch_all is not None:
            consumer = Consumer(
                service,
                settings.amqp_url,
                client,
                database,
                handlers,
                outbox=outbox,
                catch_all=catch_all,
                prefetch=settings.consumer_prefetch,
            )
            await consumer.ensure_indexes()
            runtime.consumer = consumer
            loops["consumer"] = consumer.run
        if on_startup is not None:
            await on_startup(runtime)
        tasks = [
            asyncio.create_task(_supervise(name, run), name=name) for name, run in loops.items()
        ]
        app.state.runtime = runtime
        log.info("%s started", service)
        try:
            yield
        finally:
            app.state.runtime = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()
            log.info("%s stopped", service)

    app = FastAPI(
        title=title,
        version=version,
        description=description,
        root_path=settings.root_path,
        lifespan=lifespan,
    )
    app.state.verifier = verifier
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, service=service)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "a check failed"}})
    async def readyz(runtime: RuntimeDep) -> Response:
        checks = await runtime.readiness()
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return error_response(503, "not_ready", checks)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app
