"""The streak-at-risk sweep on SecantusDB: each learner is told from their own local evening,
once per local day, and only when today's missed practice would cut the streak."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest
from db_store import Store, open_store
from sonata_db.adapters.documents import LearnerProfile, PerformanceRecord
from sonata_db.service_layer.streaks import sweep_streaks
from sonata_messaging import Transaction

pytestmark = pytest.mark.integration

EVENING = time(18, 0)


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[Store]:
    async for opened in open_store(mongo_url, "library_streaks"):
        yield opened


async def learner(user_id: str, zone: str, days: list[date], rest_days: int = 0) -> None:
    await LearnerProfile(user_id=user_id, timezone=zone, rest_days_per_week=rest_days).insert()
    for n, day in enumerate(days):
        played = datetime.combine(day, time(12), tzinfo=UTC)
        await PerformanceRecord(
            performance_id=f"{user_id}-{n}",
            session_id="s",
            user_id=user_id,
            piece_id="piece",
            piece_version=1,
            started_at=played - timedelta(minutes=3),
            finished_at=played,
            local_day=day.isoformat(),
            duration_s=180.0,
            overall_score=80.0,
            subscores={},
        ).insert()


async def sweep(store: Store, now: datetime) -> list[str]:
    async def run(fn: Callable[[Transaction], Awaitable[bool]]) -> bool:
        return await store.tx(fn)

    return await sweep_streaks(run, now, EVENING)


def march(day: int) -> date:
    return date(2026, 3, day)


async def test_each_learner_is_warned_from_their_own_evening_once(store: Store) -> None:
    await learner("kenji", "Asia/Tokyo", [march(1), march(2), march(3)])
    await learner("maya", "America/Los_Angeles", [march(2), march(3)])
    await learner("done-today", "Asia/Tokyo", [march(2), march(3), march(4)])
    await learner("resting", "Asia/Tokyo", [march(2), march(3)], rest_days=1)

    tokyo_evening = datetime(2026, 3, 4, 10, tzinfo=UTC)  # 19:00 in Tokyo, 02:00 in LA
    assert await sweep(store, tokyo_evening) == ["kenji"]
    assert await sweep(store, tokyo_evening + timedelta(minutes=30)) == []  # once per day

    la_evening = datetime(2026, 3, 5, 3, tzinfo=UTC)  # 19:00 Mar 4 in LA, noon Mar 5 in Tokyo
    assert await sweep(store, la_evening) == ["maya"]

    sent = await store.published("db.streak_changed.v1")
    assert [(e["user_id"], e["on_day"], e["days"], e["status"]) for e in sent] == [
        ("kenji", "2026-03-04", 3, "at_risk"),
        ("maya", "2026-03-04", 2, "at_risk"),
    ]


async def test_a_new_local_day_can_warn_again(store: Store) -> None:
    await learner("kenji", "Asia/Tokyo", [march(1), march(2), march(3)])
    assert await sweep(store, datetime(2026, 3, 4, 10, tzinfo=UTC)) == ["kenji"]
    await learner_plays("kenji", march(4))
    assert await sweep(store, datetime(2026, 3, 5, 10, tzinfo=UTC)) == ["kenji"]
    days = [e["days"] for e in await store.published("db.streak_changed.v1")]
    assert days == [3, 4]


async def learner_plays(user_id: str, day: date) -> None:
    played = datetime.combine(day, time(3), tzinfo=UTC)
    await PerformanceRecord(
        performance_id=f"{user_id}-{day}",
        session_id="s",
        user_id=user_id,
        piece_id="piece",
        piece_version=1,
        started_at=played,
        finished_at=played,
        local_day=day.isoformat(),
        duration_s=60.0,
        overall_score=70.0,
        subscores={},
    ).insert()
