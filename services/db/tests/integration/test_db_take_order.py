"""Mastery counts takes in the order they were played: a take whose event arrives after newer
ones (a device that was offline, a redelivery) takes its own place in the run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from db_store import Store, open_store
from sonata_contracts.ai_scoring import PerformanceScored
from sonata_db.service_layer.practice import record_performance
from sonata_db.service_layer.progress import overview
from sonata_messaging import Transaction

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
PIECE = "catalogue-twinkle-theme"


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[Store]:
    async for opened in open_store(mongo_url, "library_order"):
        yield opened


def take(user_id: str, hour: int, score: float) -> PerformanceScored:
    finished = START + timedelta(hours=hour)
    performance_id = f"perf-{uuid.uuid4().hex[:10]}"
    return PerformanceScored(
        performance_id=performance_id,
        session_id=f"session-{performance_id}",
        user_id=user_id,
        piece_id=PIECE,
        piece_version=1,
        started_at=finished - timedelta(minutes=2),
        finished_at=finished,
        duration_s=120.0,
        overall_score=score,
        subscores={"notes": score},
        report={},
    )


async def arrive(store: Store, *takes: PerformanceScored) -> list[str]:
    """The takes recorded in the order given; the users mastery was announced for."""
    for event in takes:

        async def record(tx: Transaction, event: PerformanceScored = event) -> None:
            await record_performance(event, tx, 80.0)

        await store.tx(record)
    return [m["user_id"] for m in await store.published("db.mastery_reached.v1")]


async def test_a_late_low_take_breaks_the_run_it_belongs_to(store: Store) -> None:
    # Played: 85, 50, 85, 85 - never three in a row. The 85 played first arrives last.
    user = "u-late-first"
    first, low, second, third = (take(user, h, s) for h, s in [(0, 85), (1, 50), (2, 85), (3, 85)])
    assert await arrive(store, low, second, third, first) == []
    view = await overview(user, 80.0, now=START + timedelta(hours=4))
    assert view.pieces[0]["mastered"] is False
    assert view.pieces[0]["last"] == 85


async def test_a_late_take_completing_a_run_is_mastery(store: Store) -> None:
    # Played: 85, 85, 85, 50 - three in a row, the middle one arriving after the 50.
    user = "u-late-middle"
    one, two, three, low = (take(user, h, s) for h, s in [(0, 85), (1, 85), (2, 85), (3, 50)])
    assert await arrive(store, one, three, low) == []
    assert await arrive(store, two) == [user]
    view = await overview(user, 80.0, now=START + timedelta(hours=4))
    assert view.pieces[0]["mastered"] is True
    assert view.pieces[0]["last"] == 50
