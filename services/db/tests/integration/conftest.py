"""db's API tests share one db process (SecantusDB and RabbitMQ from the testing plugin), a
JWKS of their own, and a queue bound to everything db publishes, declared before it starts."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from aiormq.exceptions import AMQPError
from sonata_messaging import declare_topology
from sonata_testing import JwksServer, RabbitVhost, ServiceProcess, SigningKey, TokenFactory

sys.path.insert(0, str(Path(__file__).parent))

from db_api_support import Events, Users, Watch

DATABASE = f"library_api_{uuid.uuid4().hex[:8]}"
OBSERVER = f"db-api-observer-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="session")
def jwks(key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([key.jwk]) as server:
        yield server


@pytest.fixture(scope="session")
def library_amqp_url() -> Iterator[str]:
    """A vhost of these tests' own: this db lives all session, and another db consuming the
    same `db` queue (a fleet test's) would take half of its events."""
    with RabbitVhost("sonata-db-api") as vhost:
        yield vhost.url


@pytest.fixture(scope="session")
async def events(library_amqp_url: str) -> AsyncIterator[Events]:
    connection = await aio_pika.connect(library_amqp_url)
    channel = await connection.channel()
    queue = await declare_topology(channel, OBSERVER, ["db.#"])
    try:
        yield Events(queue)
    finally:
        # the queues go with the vhost; the connection may already be gone, since the broker
        # drops it when sync tests later in the session leave its heartbeats unanswered
        with suppress(AMQPError, ConnectionError):
            await connection.close()


@pytest.fixture(scope="session")
def library(
    mongo_url: str,
    library_amqp_url: str,
    jwks: JwksServer,
    events: Events,
    tmp_path_factory: Any,
) -> Iterator[ServiceProcess]:
    env = {
        "ENVIRONMENT": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": DATABASE,
        "AMQP_URL": library_amqp_url,
        "AUTH_JWKS_URL": jwks.url,
        "MAX_UPLOAD_BYTES": "200000",
        "LOG_LEVEL": "WARNING",
        # Kept answers never expire here: every write these tests read back must show through
        # the cache's invalidation alone.
        "READ_CACHE_TTL_S": "3600",
    }
    service = ServiceProcess(
        "db", "sonata_db.main:create_app", env, log_dir=tmp_path_factory.mktemp("db-api")
    )
    service.start(timeout=90)
    try:
        yield service
    finally:
        service.stop()
        log = service.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]


@pytest.fixture(scope="session")
def users(key: SigningKey) -> Users:
    return Users(TokenFactory(key))


@pytest.fixture(scope="session")
def watch() -> Iterator[Watch]:
    w = Watch()
    yield w
    assert w.server_errors() == [], w.server_errors()


@pytest.fixture
async def http(library: ServiceProcess, watch: Watch) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=library.base_url, timeout=60, event_hooks={"response": [watch]}
    ) as client:
        yield client


@pytest.fixture(scope="session")
def library_db() -> str:
    return DATABASE
