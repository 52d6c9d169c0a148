"""/readyz tells the truth: 503 naming the dependency while MongoDB or RabbitMQ is away, ready
again once it is back, without restarting the service."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from fastapi import FastAPI
from sonata_contracts.auth import UserDeleted
from sonata_kit import ServiceSettings, create_service_app
from sonata_messaging import Transaction, on
from sonata_testing import SecantusServer, eventually, free_port

pytestmark = pytest.mark.integration


class CuttableProxy:
    """A TCP relay in front of the broker: ``cut()`` drops it as a dead broker would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}


async def _noop(event: UserDeleted, tx: Transaction) -> None:
    return None


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[tuple[CuttableProxy, str]]:
    parts = urlsplit(amqp_url)
    relay = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await relay.open()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{relay.port}"
    yield relay, urlunsplit(parts._replace(netloc=netloc))
    with contextlib.suppress(Exception):
        await relay.cut()


async def _checks(http: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    r = await http.get("/readyz")
    body = r.json()
    return r.status_code, body["checks"] if r.status_code == 200 else body["detail"]


@contextlib.asynccontextmanager
async def running(mongo_url: str, amqp_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = ServiceSettings(
        environment="test",
        mongodb_url=mongo_url,
        mongodb_db=f"ready_{uuid.uuid4().hex[:6]}",
        amqp_url=amqp_url,
        relay_poll_interval_s=0.2,
    )
    app: FastAPI = create_service_app(
        settings,
        service=f"kit-ready-{uuid.uuid4().hex[:6]}",
        title="readiness",
        handlers=[on(UserDeleted, _noop)],
        publishes=True,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kit") as http:
            yield http


async def test_readiness_fails_while_rabbitmq_is_unreachable_and_recovers(
    mongo_url: str, proxy: tuple[CuttableProxy, str]
) -> None:
    relay, url = proxy
    async with running(mongo_url, url) as http:

        async def ready() -> bool:
            return (await _checks(http))[0] == 200

        await eventually(ready, "readiness with the broker up")
        await relay.cut()

        async def broker_reported() -> bool:
            status, checks = await _checks(http)
            return status == 503 and checks["amqp"] != "ok" and checks["mongodb"] == "ok"

        await eventually(broker_reported, "503 naming the broker")
        await relay.open()
        await eventually(ready, "readiness once the broker is back")
        assert (await _checks(http))[1] == {"mongodb": "ok", "amqp": "ok", "consumer": "ok"}


async def test_readiness_fails_while_mongodb_is_down_and_recovers(amqp_url: str) -> None:
    port = free_port()
    server = SecantusServer(port=port).start()
    try:
        async with running(server.url, amqp_url) as http:

            async def ready() -> bool:
                return (await _checks(http))[0] == 200

            await eventually(ready, "readiness with MongoDB up")
            server.stop()
            status, checks = await _checks(http)
            assert status == 503
            assert checks["mongodb"].startswith("unreachable")
            assert checks["amqp"] == "ok"
            server = SecantusServer(port=port).start()
            await eventually(ready, "readiness once MongoDB is back")
    finally:
        server.stop()
