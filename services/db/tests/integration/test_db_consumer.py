"""db as a real process: scored performances become records (once) and a published
`db.performance_recorded.v1`; a deleted user's records are erased; the streak sweep, on a
clock started at a Tokyo evening, tells the Tokyo learner once and the Los Angeles one not."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from pymongo import AsyncMongoClient
from sonata_contracts import parse_event
from sonata_contracts.ai_scoring import PerformanceScored
from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_contracts.db import PerformanceRecorded
from sonata_messaging import declare_topology
from sonata_testing import ServiceProcess, eventually, publish_events

pytestmark = pytest.mark.integration

DATABASE = f"library_{uuid.uuid4().hex[:8]}"
OBSERVER = f"db-observer-{uuid.uuid4().hex[:8]}"
SWEEP_CLOCK = datetime(2026, 3, 4, 10, tzinfo=UTC)  # 19:00 in Tokyo, 02:00 in Los Angeles


@pytest.fixture(scope="module")
def library(mongo_url: str, amqp_url: str, tmp_path_factory: Any) -> Iterator[ServiceProcess]:
    env = {
        "ENVIRONMENT": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": DATABASE,
        "AMQP_URL": amqp_url,
        "SEED_CATALOGUE": "false",
        "STREAK_CLOCK_START": SWEEP_CLOCK.isoformat(),
        "STREAK_SWEEP_INTERVAL_S": "0.3",
    }
    service = ServiceProcess(
        "db", "sonata_db.main:create_app", env, log_dir=tmp_path_factory.mktemp("db")
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
async def observed(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue of our own bound to what db publishes, to see its events leave the outbox."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    queue = await declare_topology(channel, OBSERVER, [PerformanceRecorded.NAME])
    try:
        yield queue
    finally:
        await channel.queue_delete(OBSERVER)
        await channel.queue_delete(f"{OBSERVER}.dead")
        await connection.close()


def scored(user_id: str, performance_id: str) -> PerformanceScored:
    finished = datetime.now(UTC)
    return PerformanceScored(
        performance_id=performance_id,
        session_id=f"session-{performance_id}",
        user_id=user_id,
        piece_id="fur-elise",
        piece_version=3,
        started_at=finished - timedelta(seconds=95),
        finished_at=finished,
        duration_s=95.0,
        overall_score=81.5,
        subscores={"notes": 90.0, "rhythm": 74.0},
        report={"bars": [{"bar": 1, "accuracy": 1.0}]},
        correlation_id="req-db-7",
    )


async def test_scored_performance_is_recorded_once_and_announced(
    library: ServiceProcess,
    amqp_url: str,
    mongo_url: str,
    observed: aio_pika.abc.AbstractQueue,
) -> None:
    user = f"learner-{uuid.uuid4().hex[:6]}"
    first = scored(user, f"perf-{uuid.uuid4().hex[:6]}")
    # ai-scoring re-sends the same performance under a new event id after a retry.
    again = scored(user, first.performance_id)
    other = scored(user, f"perf-{uuid.uuid4().hex[:6]}")
    await publish_events(amqp_url, [first, again, other])

    announced: list[PerformanceRecorded] = []

    async def two_announced() -> bool:
        message = await observed.get(no_ack=True, fail=False)
        if message is not None:
            event = parse_event(message.type or "", message.body)
            assert isinstance(event, PerformanceRecorded)
            announced.append(event)
        return len(announced) == 2

    await eventually(two_announced, "two db.performance_recorded.v1 events")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        records = client[DATABASE].performances
        assert await records.count_documents({"user_id": user}) == 2
        assert sorted(e.performance_id for e in announced) == sorted(
            [first.performance_id, other.performance_id]
        )
        # The correlation id of the request that caused the performance travels on.
        assert {e.correlation_id for e in announced} == {"req-db-7"}
        row = await records.find_one({"performance_id": first.performance_id})
        assert row is not None
        assert row["subscores"] == {"notes": 90.0, "rhythm": 74.0}

        await publish_events(amqp_url, [UserDeleted(user_id=user)])

        async def erased() -> bool:
            return await records.count_documents({"user_id": user}) == 0

        await eventually(erased, "the user's performances to be erased")
    finally:
        await client.close()


async def test_the_sweep_tells_a_learner_once_from_their_local_evening(
    library: ServiceProcess, amqp_url: str, mongo_url: str
) -> None:
    learners = {
        f"{zone}-{uuid.uuid4().hex[:6]}": zone for zone in ("Asia/Tokyo", "America/Los_Angeles")
    }
    events: list[Any] = []
    for user, zone in learners.items():
        events.append(
            UserRegistered(
                user_id=user, email=f"{user}@example.org", display_name="Kim",
                roles=["student"], locale="en", timezone=zone,
            )
        )  # fmt: skip
    await publish_events(amqp_url, events)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    database = client[DATABASE]

    async def profiles_kept() -> bool:
        return await database.profiles.count_documents({"user_id": {"$in": [*learners]}}) == 2

    try:
        await eventually(profiles_kept, "both learners' timezones")
        takes = []
        for user in learners:
            # Sunday and Tuesday: Monday used this week's one rest day, so Wednesday is at risk.
            for day in (1, 3):
                take = scored(user, f"perf-{uuid.uuid4().hex[:6]}")
                played = datetime(2026, 3, day, 12, tzinfo=UTC)  # that day in both zones
                takes.append(
                    take.model_copy(
                        update={"started_at": played - timedelta(minutes=2), "finished_at": played}
                    )
                )
        await publish_events(amqp_url, takes)

        async def at_risk() -> list[dict[str, Any]]:
            rows = database.outbox.find({"name": "db.streak_changed.v1"})
            bodies = [(json.loads(r["body"]), r["published_at"]) async for r in rows]
            return [
                {**b, "sent": sent is not None} for b, sent in bodies if b["user_id"] in learners
                and b["status"] == "at_risk"
            ]  # fmt: skip

        async def told_and_sent() -> bool:
            return any(row["sent"] for row in await at_risk())

        await eventually(told_and_sent, "a streak at risk published")
        await asyncio.sleep(1.5)  # several more sweeps of the same local evening
        (told,) = await at_risk()
        tokyo = next(u for u, z in learners.items() if z == "Asia/Tokyo")
        assert (told["user_id"], told["on_day"], told["days"]) == (tokyo, "2026-03-04", 2)
    finally:
        await client.close()
