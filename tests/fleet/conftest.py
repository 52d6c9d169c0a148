"""Fixtures shared by the fleet journeys: auth as a real process, and a client that records
every answer so a module fails if any of them was a 5xx."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sonata_testing import ServiceProcess

sys.path.insert(0, str(Path(__file__).parent))

from auth_fleet_support import StatusWatch, start_auth, stop_and_check_log


@pytest.fixture(scope="module")
def auth(mongo_url: str, amqp_url: str) -> Iterator[ServiceProcess]:
    """auth with its default settings; a module needing other settings overrides this."""
    proc = start_auth(mongo_url, amqp_url)
    yield proc
    stop_and_check_log(proc)


@pytest.fixture(scope="module")
def watch() -> Iterator[StatusWatch]:
    w = StatusWatch()
    yield w
    assert w.server_errors() == [], f"5xx answers: {w.server_errors()}"


@pytest.fixture
async def http(watch: StatusWatch) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60, event_hooks={"response": [watch]}) as client:
        yield client
