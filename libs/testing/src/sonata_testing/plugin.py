"""pytest fixtures: one SecantusDB server and one RabbitMQ vhost per test session (per worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sonata_testing.infra import RabbitVhost, SecantusServer


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    """Connection string of a fresh SecantusDB server (MongoDB wire protocol)."""
    with SecantusServer() as server:
        yield server.url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """AMQP URL of a fresh virtual host on the machine's RabbitMQ, deleted afterwards."""
    with RabbitVhost() as vhost:
        yield vhost.url
