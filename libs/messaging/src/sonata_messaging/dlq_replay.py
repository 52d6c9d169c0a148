"""Move dead-lettered messages of one service back onto its queue.

    python -m sonata_messaging.dlq_replay <service> [--amqp-url URL] [--limit N]

The message keeps its ``message_id`` (the event id), so the inbox keeps the effect single.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import aio_pika
from aiormq.exceptions import AMQPConnectionError, ChannelNotFoundEntity

from sonata_messaging.topology import dead_queue_name

_DEATH_HEADERS = {
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
}


async def replay(service: str, amqp_url: str, limit: int | None = None) -> int:
    """Returns how many messages were moved."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dead = await channel.declare_queue(dead_queue_name(service), passive=True)
        # Only what is dead now: a message that fails again comes back behind us and must wait
        # for the next replay, not loop forever.
        present = int(dead.declaration_result.message_count or 0)
        budget = present if limit is None else min(limit, present)
        moved = 0
        while moved < budget:
            message = await dead.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = {k: v for k, v in message.headers.items() if k not in _DEATH_HEADERS}
            replays = headers.get("x-replays", 0)
            headers["x-replays"] = (replays if isinstance(replays, int) else 0) + 1
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body=message.body,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message.message_id,
                    type=message.type,
                    correlation_id=message.correlation_id,
                    headers=headers,
                ),
                routing_key=service,
            )
            # Acked only after the broker confirmed the copy: a crash here duplicates, never loses.
            await message.ack()
            moved += 1
        return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sonata_messaging.dlq_replay")
    parser.add_argument("service", help="consuming service, e.g. notifications")
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    parser.add_argument("--limit", type=int, default=None, help="move at most N messages")
    args = parser.parse_args(argv)
    dead = dead_queue_name(args.service)
    try:
        moved = asyncio.run(replay(args.service, args.amqp_url, args.limit))
    except ChannelNotFoundEntity:
        print(
            f"no queue {dead}: {args.service} is not a consuming service, or it has never "
            "started against this broker",
            file=sys.stderr,
        )
        return 2
    except (AMQPConnectionError, OSError, TimeoutError) as exc:
        print(f"cannot reach RabbitMQ (AMQP_URL): {exc!r}", file=sys.stderr)
        return 1
    print(f"moved {moved} message(s) from {dead} to {args.service}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
