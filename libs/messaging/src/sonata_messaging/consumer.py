"""The consumer side: at-least-once in, effect once through an inbox claimed in the handler's
transaction; anything that cannot be handled goes once to ``<service>.dead``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError
from sonata_contracts import REGISTRY, ContractError, Event, UnknownEventError, parse_event

from sonata_messaging.correlation import correlation_scope
from sonata_messaging.metrics import (
    DEAD_LETTER_DEPTH,
    DEAD_LETTER_REASONS,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
)
from sonata_messaging.outbox import Outbox
from sonata_messaging.relay import RECOVERABLE, raise_if_cancelling
from sonata_messaging.topology import dead_queue_name, declare_topology
from sonata_messaging.transaction import Transaction, run_in_transaction

log = logging.getLogger("sonata.messaging.consumer")

INBOX_COLLECTION = "inbox"

E = TypeVar("E", bound=Event)
Handler = Callable[[Event, Transaction], Awaitable[None]]


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    handler: Handler


def on(event_type: type[E], fn: Callable[[E, Transaction], Awaitable[None]]) -> HandlerSpec:
    """Declare that ``fn`` handles ``event_type`` (bound by its name)."""

    async def handler(event: Event, tx: Transaction) -> None:
        if not isinstance(event, event_type):
            raise TypeError(f"{event_type.NAME} handler got {type(event).__name__}")
        await fn(event, tx)

    return HandlerSpec(event_type.NAME, handler)


class _AlreadyHandledError(Exception):
    pass


class Consumer:
    def __init__(
        self,
        service: str,
        amqp_url: str,
        client: AsyncMongoClient[Any],
        database: AsyncDatabase[Any],
        handlers: Sequence[HandlerSpec],
        *,
        outbox: Outbox | None = None,
        catch_all: Handler | None = None,
        prefetch: int = 64,
        attempts: int = 3,
        retry_delay: float = 0.05,
        max_backoff: float = 5.0,
        conflict_patience: float = 120.0,
        dead_letter_poll_interval: float = 5.0,
    ) -> None:
        self.service = service
        self.amqp_url = amqp_url
        self.client = client
        self.inbox = database[INBOX_COLLECTION]
        self.handlers = {spec.name: spec.handler for spec in handlers}
        self.catch_all = catch_all
        self.outbox = outbox
        self.prefetch = prefetch
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.max_backoff = max_backoff
        self.conflict_patience = conflict_patience
        self.dead_letter_poll_interval = dead_letter_poll_interval
        self.binding_keys: list[str] = ["#"] if catch_all else sorted(self.handlers)
        self.consuming = False
        # The failure series exist at 0 from the start: rate() and increase() then see the
        # very first failure, and "no failures" reads 0 rather than no data.
        for name in sorted(REGISTRY) if catch_all else sorted(self.handlers):
            EVENTS_FAILED.labels(service, name)
        for reason in DEAD_LETTER_REASONS:
            EVENTS_DEAD_LETTERED.labels(service, reason)

    async def ensure_indexes(self) -> None:
        await self.inbox.create_index(
            [("consumer", ASCENDING), ("event_id", ASCENDING)], unique=True, name="claim"
        )

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with exponential backoff."""
        await self.ensure_indexes()
        try:
            await self._consume_forever()
        finally:
            self.consuming = False

    async def _consume_forever(self) -> None:
        backoff = self.retry_delay
        while True:
            raise_if_cancelling()
            try:
                connection = await aio_pika.connect(self.amqp_url, timeout=5)
                async with connection:
                    channel = await connection.channel()
                    await channel.set_qos(prefetch_count=self.prefetch)
                    queue = await declare_topology(channel, self.service, self.binding_keys)
                    backoff = self.retry_delay
                    watcher = asyncio.create_task(self._watch_dead_letters(connection))
                    try:
                        async with queue.iterator() as messages:
                            self.consuming = True
                            async for message in messages:
                                await self.handle(message)
                    finally:
                        watcher.cancel()
                        await asyncio.gather(watcher, return_exceptions=True)
            except RECOVERABLE as exc:
                self.consuming = False
                raise_if_cancelling(exc)
                log.warning("consumer %s: %s; reconnecting in %.1fs", self.service, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _watch_dead_letters(self, connection: AbstractConnection) -> None:
        """Keep ``sonata_dead_letter_queue_messages`` at the depth of ``<service>.dead``: a
        passive declare on a channel of its own (a failed one closes only that channel)."""
        name = dead_queue_name(self.service)
        depth = DEAD_LETTER_DEPTH.labels(self.service, name)
        while True:
            try:
                channel = await connection.channel()
                async with channel:
                    while True:
                        queue = await channel.declare_queue(name, passive=True)
                        depth.set(queue.declaration_result.message_count or 0)
                        await asyncio.sleep(self.dead_letter_poll_interval)
            except RECOVERABLE as exc:
                raise_if_cancelling(exc)
                log.warning("consumer %s: cannot read %s depth: %s", self.service, name, exc)
                await asyncio.sleep(self.dead_letter_poll_interval)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        with correlation_scope(message.correlation_id):
            await self._handle(message)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        name = message.type or message.routing_key or ""
        try:
            event = parse_event(name, message.body)
        except ContractError as exc:
            reason = "unknown_event" if isinstance(exc, UnknownEventError) else "invalid_body"
            await self._dead_letter(message, reason, str(exc))
            return
        handler = self.handlers.get(name, self.catch_all)
        if handler is None:
            await self._dead_letter(message, "no_handler", f"{name} has no handler here")
            return
        with correlation_scope(event.correlation_id or message.correlation_id):
            await self._apply_with_retries(message, event, handler)

    async def _apply_with_retries(
        self, message: AbstractIncomingMessage, event: Event, handler: Handler
    ) -> None:
        attempt = 0
        conflicts = 0
        conflicted_since: float | None = None
        while True:
            try:
                await run_in_transaction(
                    self.client, lambda tx: self._apply(tx, event, handler), outbox=self.outbox
                )
            except _AlreadyHandledError:
                await message.ack()
                EVENTS_CONSUMED.labels(self.service, event.NAME, "duplicate").inc()
                log.info("duplicate %s %s acknowledged", event.NAME, event.id)
                return
            except ConnectionFailure:
                # The database is away, not the message's fault: give it back and reconnect.
                await message.nack(requeue=True)
                raise
            except PyMongoError as exc:
                if not exc.has_error_label("TransientTransactionError"):
                    attempt += 1
                    if await self._failed(message, event, exc, attempt):
                        return
                    continue
                # A transaction left open by a crashed consumer holds the inbox key until the
                # server reaps it (transactionLifetimeLimitSeconds, 60 s by default): wait.
                now = asyncio.get_running_loop().time()
                conflicted_since = conflicted_since or now
                if now - conflicted_since > self.conflict_patience:
                    await message.nack(requeue=True)
                    raise
                log.info("%s %s waits for a conflicting transaction", event.NAME, event.id)
                conflicts += 1
                await asyncio.sleep(min(self.max_backoff, 0.05 * 2 ** min(conflicts, 7)))
            except Exception as exc:
                attempt += 1
                if await self._failed(message, event, exc, attempt):
                    return
            else:
                await message.ack()
                EVENTS_CONSUMED.labels(self.service, event.NAME, "applied").inc()
                log.info("applied %s %s", event.NAME, event.id)
                return

    async def _failed(
        self, message: AbstractIncomingMessage, event: Event, exc: Exception, attempt: int
    ) -> bool:
        """Count a handler failure; True when the message has been dead-lettered."""
        EVENTS_FAILED.labels(self.service, event.NAME).inc()
        log.warning(
            "handler for %s %s failed (attempt %d/%d): %r",
            event.NAME,
            event.id,
            attempt,
            self.attempts,
            exc,
        )
        if attempt >= self.attempts:
            await self._dead_letter(message, "handler_failed", repr(exc))
            return True
        await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
        return False

    async def _apply(self, tx: Transaction, event: Event, handler: Handler) -> None:
        try:
            await self.inbox.insert_one(
                {
                    "consumer": self.service,
                    "event_id": str(event.id),
                    "name": event.NAME,
                    "received_at": datetime.now(UTC),
                },
                session=tx.session,
            )
        except DuplicateKeyError:
            raise _AlreadyHandledError from None
        await handler(event, tx)

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str, why: str) -> None:
        log.error("dead-lettering message %s (%s): %s", message.message_id, reason, why)
        await message.reject(requeue=False)
        EVENTS_DEAD_LETTERED.labels(self.service, reason).inc()
