"""metrics' own consumer code under the real bus consumer, RabbitMQ and SecantusDB: the
Prometheus count of domain events moves only when the transaction holding the stored count
commits, so a handler rolled back and retried counts its event once, like the database."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from beanie import init_beanie
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from sonata_contracts import Event
from sonata_contracts.db import AchievementUnlocked
from sonata_messaging import Consumer, Transaction
from sonata_metrics.adapters.documents import DOCUMENTS, DailyEventCount
from sonata_metrics.entrypoints.consumer import consume
from sonata_testing import eventually, publish_events

pytestmark = pytest.mark.integration

DAY = datetime(2031, 9, 9, 9, 0, tzinfo=UTC)


def counted(name: str) -> float:
    return REGISTRY.get_sample_value("sonata_domain_events_total", {"event": name}) or 0.0


@pytest.fixture
async def client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    await init_beanie(
        database=mongo[f"metrics_counter_{uuid.uuid4().hex[:8]}"], document_models=DOCUMENTS
    )
    yield mongo
    await mongo.close()


async def test_a_rolled_back_and_retried_event_is_counted_once(
    client: AsyncMongoClient[dict[str, Any]], amqp_url: str
) -> None:
    service = f"metrics-counter-{uuid.uuid4().hex[:8]}"
    event = AchievementUnlocked(
        user_id="ana", achievement="score_90", title="Score 90", occurred_at=DAY
    )
    tries: list[str] = []

    async def fails_once_after_counting(received: Event, tx: Transaction) -> None:
        await consume(received, tx)
        if received.id == event.id:
            tries.append("try")
            if len(tries) == 1:
                raise RuntimeError("a later write of the same transaction failed")

    consumer = Consumer(
        service,
        amqp_url,
        client,
        DailyEventCount.get_pymongo_collection().database,
        [],
        catch_all=fails_once_after_counting,
        retry_delay=0.01,
    )
    before = counted(AchievementUnlocked.NAME)
    task = asyncio.create_task(consumer.run())
    try:

        async def consuming() -> bool:
            return consumer.consuming

        await eventually(consuming, "the consumer to start")
        await publish_events(amqp_url, [event])

        async def applied() -> bool:
            return len(tries) == 2 and counted(AchievementUnlocked.NAME) > before

        await eventually(applied, "the retried event to be applied")
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        connection = await aio_pika.connect(amqp_url)
        async with connection, connection.channel() as channel:
            for queue in (service, f"{service}.dead"):
                await channel.queue_delete(queue)

    row = await DailyEventCount.find_one(
        DailyEventCount.day == DAY.date().isoformat(),
        DailyEventCount.name == AchievementUnlocked.NAME,
    )
    assert row is not None
    assert row.total == 1
    assert counted(AchievementUnlocked.NAME) - before == 1
