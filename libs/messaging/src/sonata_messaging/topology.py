"""Exchanges and queues of the event bus, declared idempotently by every service at startup."""

from __future__ import annotations

from collections.abc import Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

EXCHANGE = "domain-events"
DEAD_LETTER_EXCHANGE = "domain-events.dlx"


def dead_queue_name(service: str) -> str:
    return f"{service}.dead"


async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_topology(
    channel: AbstractChannel, service: str, binding_keys: Iterable[str]
) -> AbstractQueue:
    """The service's queue bound to ``binding_keys``, plus its dead-letter queue.

    Dead letters are re-keyed with the service name so each lands only in its own
    ``<service>.dead`` even though the original routing key is shared by many queues.
    """
    exchange = await declare_exchange(channel)
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead = await channel.declare_queue(dead_queue_name(service), durable=True)
    await dead.bind(dlx, routing_key=service)
    queue = await channel.declare_queue(
        service,
        durable=True,
        arguments={
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": service,
        },
    )
    for key in binding_keys:
        await queue.bind(exchange, routing_key=key)
    return queue
