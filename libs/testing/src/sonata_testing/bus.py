"""Publishing events onto the bus as a producer service would, for tests of consumers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
from sonata_contracts import Event


async def publish_events(amqp_url: str, events: Sequence[Event]) -> None:
    """Persistent, confirmed, routed by name, ``message_id`` = event id: like the relay."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            "domain-events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        for event in events:
            await exchange.publish(
                aio_pika.Message(
                    event.to_json(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=str(event.id),
                    type=event.NAME,
                    correlation_id=event.correlation_id,
                ),
                routing_key=event.NAME,
                mandatory=False,
            )


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            if await asyncio.wait_for(check(), max(0.1, deadline - time.monotonic())):
                return
        except TimeoutError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)
