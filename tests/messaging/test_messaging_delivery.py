"""Delivery guarantees of the event bus against the real RabbitMQ and SecantusDB: consumer
crashes, poison messages, relay crashes and a broker outage."""

import asyncio
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from sonata_contracts import Event
from sonata_contracts.auth import UserDeleted
from sonata_contracts.db import PieceWithdrawn
from sonata_messaging import (
    Consumer,
    Outbox,
    OutboxRelay,
    Transaction,
    declare_topology,
    get_correlation_id,
    on,
    run_in_transaction,
)
from sonata_messaging.topology import declare_exchange
from sonata_testing import free_port

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent


def uid() -> str:
    return uuid.uuid4().hex[:10]


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            if await asyncio.wait_for(check(), max(0.1, deadline - loop.time())):
                return
        except TimeoutError:
            pass
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Bus:
    """The test's own AMQP connection: publish like a producer, look at queues, clean up."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self.connection = connection
        self.created: list[str] = []

    async def declare(self, service: str, keys: Iterable[str]) -> None:
        self.created += [service, f"{service}.dead"]
        async with self.connection.channel() as channel:
            await declare_topology(channel, service, keys)

    async def publish(self, events: list[Event]) -> None:
        async with self.connection.channel(publisher_confirms=True) as channel:
            exchange = await declare_exchange(channel)
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            e.to_json(),
                            message_id=str(e.id),
                            type=e.NAME,
                            correlation_id=e.correlation_id,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=e.NAME,
                        mandatory=False,
                    )
                    for e in events
                )
            )

    async def send_raw(self, queue: str, body: bytes, type_: str, message_id: str) -> None:
        async with self.connection.channel(publisher_confirms=True) as channel:
            await channel.default_exchange.publish(
                aio_pika.Message(body, type=type_, message_id=message_id),
                routing_key=queue,
            )

    async def depth(self, queue: str) -> int:
        async with self.connection.channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
            count = declared.declaration_result.message_count
            return int(count or 0)

    async def drain(self, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        taken = []
        async with self.connection.channel() as channel:
            q = await channel.declare_queue(queue, passive=True)
            while (message := await q.get(no_ack=True, fail=False)) is not None:
                taken.append(message)
        return taken


@pytest.fixture
async def bus(amqp_url: str) -> AsyncIterator[Bus]:
    connection = await aio_pika.connect(amqp_url)
    bus = Bus(connection)
    try:
        yield bus
    finally:
        async with connection.channel() as channel:
            for name in bus.created:
                await channel.queue_delete(name)
        await connection.close()


@pytest.fixture
async def client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield mongo
    await mongo.close()


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def short_txn_mongo_url() -> AsyncIterator[str]:
    """A MongoDB server reaping abandoned transactions after 2 s (mongod's default is 60 s)."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "short_txn_mongo.py"), str(port), "2"
    )
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    probe: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=30000)
    try:
        await probe.admin.command("ping")
        yield url
    finally:
        await probe.close()
        server.terminate()
        await server.wait()


async def test_consumer_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    short_txn_mongo_url: str, amqp_url: str, bus: Bus
) -> None:
    mongo_url = short_txn_mongo_url
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    service, database = f"killed-{uid()}", f"killed_{uid()}"
    effects = client[database].effects
    await bus.declare(service, [UserDeleted.NAME])
    events: list[Event] = [UserDeleted(user_id=f"user-{i}") for i in range(500)]
    await bus.publish(events)

    command = [sys.executable, str(HERE / "consumer_process.py"), mongo_url, database, service]
    first = await asyncio.create_subprocess_exec(*command, amqp_url)

    async def some_applied() -> bool:
        return await effects.count_documents({}) >= 40

    await wait_until(some_applied, "the first consumer to apply some events")
    first.kill()
    await first.wait()
    applied_before_restart = await effects.count_documents({})
    assert applied_before_restart < len(events), "the kill came too late to be mid-batch"

    second = await asyncio.create_subprocess_exec(*command, amqp_url)
    try:

        async def all_acknowledged() -> bool:
            return (
                await effects.count_documents({}) >= len(events) and await bus.depth(service) == 0
            )

        await wait_until(all_acknowledged, "the restarted consumer to drain the queue")
        await asyncio.sleep(0.5)  # anything applied twice would land now
    finally:
        second.kill()
        await second.wait()

    applied = [row["event_id"] async for row in effects.find({}, {"event_id": 1})]
    assert len(applied) == len(events)
    assert set(applied) == {str(e.id) for e in events}
    assert await client[database].inbox.count_documents({"consumer": service}) == len(events)
    assert await bus.depth(f"{service}.dead") == 0
    await client.close()


async def test_poison_messages_land_once_in_the_dead_letter_queue_and_can_be_replayed(
    amqp_url: str, bus: Bus, client: AsyncMongoClient[dict[str, Any]]
) -> None:
    service, database = f"poison-{uid()}", f"poison_{uid()}"
    db = client[database]
    broken = {"handler": True}

    async def apply(event: UserDeleted, tx: Transaction) -> None:
        await db.effects.insert_one(
            {"user_id": event.user_id, "correlation_id": get_correlation_id()},
            session=tx.session,
        )
        if event.user_id == "explodes" and broken["handler"]:
            raise RuntimeError("handler bug after its write: the transaction rolls back")

    consumer = Consumer(
        service, amqp_url, client, db, [on(UserDeleted, apply)], attempts=3, retry_delay=0.01
    )
    await bus.declare(service, consumer.binding_keys)
    task = asyncio.create_task(consumer.run())
    dead_before = sample(
        "sonata_events_dead_lettered_total", service=service, reason="handler_failed"
    )
    labels = {"service": service, "event": UserDeleted.NAME}
    try:
        first = UserDeleted(user_id="first", correlation_id="req-from-http-42")
        await bus.publish([first])
        await bus.send_raw(service, b"{not json", UserDeleted.NAME, "poison-not-json")
        await bus.send_raw(service, b'{"user_id": "x"}', "auth.user_exploded.v1", "poison-unknown")
        await bus.send_raw(service, b'{"id": "nope"}', UserDeleted.NAME, "poison-missing-field")
        explodes = UserDeleted(user_id="explodes")
        after = [UserDeleted(user_id=f"after-{i}") for i in range(5)]
        await bus.publish([explodes, *after])

        async def good_ones_applied() -> bool:
            return await db.effects.count_documents({}) == 1 + len(after)

        await wait_until(good_ones_applied, "the messages after the poison to be applied")

        async def four_dead() -> bool:
            return await bus.depth(f"{service}.dead") == 4

        await wait_until(four_dead, "four dead letters")
        await asyncio.sleep(0.3)
        assert await bus.depth(f"{service}.dead") == 4
        assert await bus.depth(service) == 0
        assert (
            sample("sonata_events_dead_lettered_total", service=service, reason="handler_failed")
            - dead_before
            == 1
        )
        row = await db.effects.find_one({"user_id": "first"})
        assert row is not None
        assert row["correlation_id"] == "req-from-http-42"
        # the rolled-back attempts left nothing and counted as failed, never as consumed
        assert await db.effects.count_documents({"user_id": "explodes"}) == 0
        assert sample("sonata_events_failed_total", **labels) == 3
        assert sample("sonata_events_consumed_total", **labels, outcome="applied") == 1 + len(after)

        # The bug is fixed; `make dlq-replay` moves the dead letters back with their ids.
        broken["handler"] = False
        make = shutil.which("make")
        assert make, "make is not installed"
        replay = await asyncio.create_subprocess_exec(
            make,
            "--no-print-directory",
            "dlq-replay",
            f"s={service}",
            cwd=HERE.parents[1],
            env={**os.environ, "AMQP_URL": amqp_url},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await replay.communicate()
        assert replay.returncode == 0, out
        assert f"moved 4 message(s) from {service}.dead to {service}".encode() in out

        async def explodes_applied() -> bool:
            return await db.effects.count_documents({"user_id": "explodes"}) == 1

        await wait_until(explodes_applied, "the replayed event to be applied")

        async def three_dead() -> bool:
            return await bus.depth(f"{service}.dead") == 3

        await wait_until(three_dead, "the unparseable ones to be dead-lettered again")
        dead = await bus.drain(f"{service}.dead")
        assert sorted(m.message_id or "" for m in dead) == [
            "poison-missing-field",
            "poison-not-json",
            "poison-unknown",
        ]
        claimed = await db.inbox.find_one({"event_id": str(explodes.id)})
        assert claimed is not None
    finally:
        await stop(task)


async def test_relay_crash_between_confirm_and_mark_is_absorbed_by_the_inbox(
    mongo_url: str, amqp_url: str, bus: Bus, client: AsyncMongoClient[dict[str, Any]]
) -> None:
    producer, producer_db = f"producer-{uid()}", f"producer_{uid()}"
    service, database = f"absorber-{uid()}", f"absorber_{uid()}"
    outbox = Outbox(client[producer_db], producer)
    await outbox.ensure_indexes()
    events = [UserDeleted(user_id=f"gone-{i}") for i in range(20)]

    async def write(tx: Transaction) -> None:
        for event in events:
            await tx.publish(event)

    await run_in_transaction(client, write, outbox=outbox)

    effects = client[database].effects

    async def apply(event: UserDeleted, tx: Transaction) -> None:
        await effects.update_one(
            {"_id": str(event.id)}, {"$inc": {"applied": 1}}, upsert=True, session=tx.session
        )

    consumer = Consumer(service, amqp_url, client, client[database], [on(UserDeleted, apply)])
    await bus.declare(service, consumer.binding_keys)
    consumer_task = asyncio.create_task(consumer.run())
    duplicates = {"service": service, "event": UserDeleted.NAME, "outcome": "duplicate"}
    try:
        crashing = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "relay_crash_process.py"),
            mongo_url,
            producer_db,
            producer,
            amqp_url,
        )
        assert await asyncio.wait_for(crashing.wait(), 60) == 17
        assert await outbox.collection.count_documents({"published_at": None}) == len(events)

        async def first_delivery_applied() -> bool:
            return await effects.count_documents({}) == len(events)

        await wait_until(first_delivery_applied, "the first delivery to be applied")
        before = sample("sonata_events_consumed_total", **duplicates)

        relay_task = asyncio.create_task(OutboxRelay(outbox, amqp_url).run())
        try:

            async def duplicates_absorbed() -> bool:
                seen = sample("sonata_events_consumed_total", **duplicates) - before
                return seen == len(events)

            await wait_until(duplicates_absorbed, "the redelivered events to be absorbed")
            assert await outbox.collection.count_documents({"published_at": None}) == 0
        finally:
            await stop(relay_task)
    finally:
        await stop(consumer_task)
    applied = [row["applied"] async for row in effects.find({})]
    assert applied == [1] * len(events)


async def test_outbox_age_rises_while_the_broker_is_unreachable_then_rows_go_out(
    amqp_url: str, bus: Bus, client: AsyncMongoClient[dict[str, Any]]
) -> None:
    service = f"outage-{uid()}"
    observer = f"observer-{uid()}"
    outbox = Outbox(client[f"outage_{uid()}"], service)
    await outbox.ensure_indexes()
    await bus.declare(observer, [PieceWithdrawn.NAME])
    events = [
        PieceWithdrawn(piece_id=f"p{i}", version=1, owner_id=None, reason="test") for i in range(3)
    ]

    async def write(tx: Transaction) -> None:
        for event in events:
            await tx.publish(event)

    await run_in_transaction(client, write, outbox=outbox)
    unreachable = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    failed_before = sample("sonata_events_publish_failed_total", service=service)
    published = {"service": service, "event": PieceWithdrawn.NAME}
    down = asyncio.create_task(
        OutboxRelay(outbox, unreachable, age_interval=0.1, max_backoff=0.2).run()
    )
    try:

        def age() -> float:
            return sample("sonata_outbox_oldest_unpublished_age_seconds", service=service)

        async def aged() -> bool:
            return age() >= 0.5

        await wait_until(aged, "the outbox age gauge to rise")
        first = age()

        async def still_rising() -> bool:
            return age() >= first + 0.3

        # it keeps rising while the broker stays away (not a one-off reading)
        await wait_until(still_rising, "the outbox age gauge to keep rising")
        assert sample("sonata_events_publish_failed_total", service=service) > failed_before
        assert await outbox.collection.count_documents({"published_at": None}) == 3
        # nothing the broker has not confirmed counts as published
        assert sample("sonata_events_published_total", **published) == 0
    finally:
        await stop(down)

    up = asyncio.create_task(OutboxRelay(outbox, amqp_url, age_interval=0.1).run())
    try:

        async def delivered() -> bool:
            return await bus.depth(observer) == 3 and age() == 0.0

        await wait_until(delivered, "the rows to go out once the broker is back")
        assert await outbox.collection.count_documents({"published_at": None}) == 0
        assert sample("sonata_events_published_total", **published) == 3
    finally:
        await stop(up)
    received = await bus.drain(observer)
    assert sorted(m.message_id or "" for m in received) == sorted(str(e.id) for e in events)
    assert all(m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for m in received)


async def test_relay_retries_an_absent_broker_with_growing_pauses(
    client: AsyncMongoClient[dict[str, Any]],
) -> None:
    service = f"backoff-{uid()}"
    outbox = Outbox(client[f"backoff_{uid()}"], service)
    unreachable = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    before = sample("sonata_events_publish_failed_total", service=service)
    relay = OutboxRelay(outbox, unreachable, initial_backoff=0.05, max_backoff=0.4)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(2.0)
    await stop(task)
    attempts = sample("sonata_events_publish_failed_total", service=service) - before
    # Pauses of 0.05, 0.1, 0.2, then 0.4 s: about 7 tries in 2 s. A refused connection fails
    # at once, so retrying without a pause makes hundreds, a fixed 0.05 s pause about 40.
    assert 3 <= attempts <= 12, attempts


async def test_after_commit_callbacks_run_once_committed_and_never_after_an_abort(
    client: AsyncMongoClient[dict[str, Any]],
) -> None:
    things = client[f"after_commit_{uid()}"].things
    called: list[str] = []

    async def commits(tx: Transaction) -> None:
        await things.insert_one({"name": "kept"}, session=tx.session)
        tx.after_commit(lambda: called.append("kept"))
        assert called == []  # not before the commit

    async def aborts(tx: Transaction) -> None:
        await things.insert_one({"name": "dropped"}, session=tx.session)
        tx.after_commit(lambda: called.append("dropped"))
        raise LookupError("the use case fails")

    await run_in_transaction(client, commits)
    with pytest.raises(LookupError):
        await run_in_transaction(client, aborts)
    assert called == ["kept"]
    assert [d["name"] async for d in things.find({})] == ["kept"]
