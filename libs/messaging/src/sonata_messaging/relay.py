"""Moves committed outbox rows to the broker: publish, wait for the confirm, then mark."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from pymongo.errors import PyMongoError

from sonata_messaging.correlation import correlation_scope
from sonata_messaging.metrics import EVENTS_PUBLISHED, OUTBOX_OLDEST_AGE, PUBLISH_FAILED
from sonata_messaging.outbox import Outbox
from sonata_messaging.topology import declare_exchange

log = logging.getLogger("sonata.messaging.relay")

# What a lost broker or database looks like from here; anything else is a bug and propagates.
RECOVERABLE: tuple[type[BaseException], ...] = (
    AMQPError,
    ChannelInvalidStateError,  # a channel closed under us by a broker restart
    ConnectionError,
    OSError,
    TimeoutError,
    PyMongoError,
)


def raise_if_cancelling(exc: BaseException | None = None) -> None:
    """aiormq may turn a cancellation during connect into a connection error, and a timeout
    racing a cancel can swallow it outright; a retry loop that went on would outlive its own
    shutdown. Retry loops call this on every turn and in every handler of RECOVERABLE."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


class OutboxRelay:
    def __init__(
        self,
        outbox: Outbox,
        amqp_url: str,
        *,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        age_interval: float = 0.5,
    ) -> None:
        self.outbox = outbox
        self.amqp_url = amqp_url
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.age_interval = age_interval
        self._age = OUTBOX_OLDEST_AGE.labels(outbox.service)
        # at 0 from the start, so increase() sees the first failure
        self._failed = PUBLISH_FAILED.labels(outbox.service)

    async def run(self) -> None:
        """Publish until cancelled, reconnecting with exponential backoff."""
        watcher = asyncio.create_task(self._watch_age())
        try:
            await self._publish_forever()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _publish_forever(self) -> None:
        backoff = self.initial_backoff
        while True:
            raise_if_cancelling()
            try:
                connection = await aio_pika.connect(self.amqp_url, timeout=5)
                async with connection:
                    channel = await connection.channel(publisher_confirms=True)
                    exchange = await declare_exchange(channel)
                    backoff = self.initial_backoff
                    while True:
                        if await self.publish_pending(exchange) == 0:
                            # Commits in this process wake us at once; polling catches rows
                            # written by other processes (another replica, a script).
                            await self.outbox.wait_for_commit(self.poll_interval)
            except RECOVERABLE as exc:
                raise_if_cancelling(exc)
                self._failed.inc()
                log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _watch_age(self) -> None:
        # Measured apart from publishing so the gauge keeps rising while the broker is away.
        while True:
            try:
                self._age.set(await self.outbox.oldest_pending_age())
            except PyMongoError as exc:
                log.warning("outbox relay: cannot read outbox age: %s", exc)
            await asyncio.sleep(self.age_interval)

    async def publish_pending(self, exchange: AbstractExchange) -> int:
        """Publish one batch; returns how many rows were confirmed."""
        rows = await self.outbox.pending(self.batch_size)
        if not rows:
            self._age.set(0.0)
            return 0
        results = await asyncio.gather(
            *(self._publish(exchange, row) for row in rows), return_exceptions=True
        )
        confirmed = [row for row, res in zip(rows, results, strict=True) if res is None]
        if confirmed:
            await self._mark_published([row["_id"] for row in confirmed])
            for row in confirmed:
                EVENTS_PUBLISHED.labels(self.outbox.service, row["name"]).inc()
                with correlation_scope(row.get("correlation_id")):
                    log.info("published %s %s", row["name"], row["_id"])
        for res in results:
            if isinstance(res, BaseException):
                raise res
        return len(confirmed)

    async def _publish(self, exchange: AbstractExchange, row: dict[str, Any]) -> None:
        correlation_id = row.get("correlation_id")
        message = aio_pika.Message(
            body=row["body"].encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=row["_id"],
            type=row["name"],
            correlation_id=correlation_id,
            headers={"x-correlation-id": correlation_id} if correlation_id else {},
        )
        # mandatory=False: an event no service consumes yet is not an error of the producer.
        await exchange.publish(message, routing_key=row["name"], mandatory=False)

    async def _mark_published(self, ids: list[str]) -> None:
        await self.outbox.mark_published(ids)
