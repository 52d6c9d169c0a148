"""A burst of events with a broker restart in the middle: every notification is sent exactly
once. `make test` runs 600 events to stay in its time budget on a shared two-core machine;
`SONATA_NOTIFICATIONS_BURST=5000` runs the full burst (7 minutes there under load, so also pass
`-o timeout=900`; `make bench-notifications` does both and keeps the figures, written to the
path in `SONATA_NOTIFICATIONS_BURST_JSON`).

The machine's shared RabbitMQ is never touched: the service and the publisher use a private
node (sonata_testing.private_rabbit) that is stopped and started again while notifications is
still working through the first half of the burst; the second half is published after the
restart. Delivered messages left unacknowledged by the restart come back and meet the inbox;
the email sink counts what really went out.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pymongo import AsyncMongoClient
from sonata_contracts.auth import EmailVerificationRequested
from sonata_testing import ServiceProcess, eventually
from sonata_testing.private_rabbit import PrivateRabbit
from sonata_testing.smtp_sink import SmtpSink

sys.path.insert(
    0, str(Path(__file__).parents[2] / "services" / "notifications" / "tests" / "integration")
)
from notifications_support import notifications_env, start_notifications

pytestmark = pytest.mark.fleet
BURST = int(os.environ.get("SONATA_NOTIFICATIONS_BURST", "600"))
TUNING = {"DISPATCH_CONCURRENCY": "16", "CONSUMER_PREFETCH": "200"}
RESULT_PATH = os.environ.get("SONATA_NOTIFICATIONS_BURST_JSON", "")


@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateRabbit]:
    with PrivateRabbit() as node:
        yield node


async def publish_fast(amqp_url: str, events: list[EmailVerificationRequested]) -> None:
    """Like the relay (persistent, confirmed, message_id = event id), many confirms in flight."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            "domain-events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        for start in range(0, len(events), 250):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            e.to_json(),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=str(e.id),
                            type=e.NAME,
                        ),
                        routing_key=e.NAME,
                    )
                    for e in events[start : start + 250]
                )
            )


def write_result(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def events(n: int) -> list[EmailVerificationRequested]:
    expires = datetime.now(UTC) + timedelta(hours=1)
    out = []
    for _ in range(n):
        user = uuid.uuid4().hex[:12]
        out.append(
            EmailVerificationRequested(
                user_id=user,
                email=f"{user}@example.org",
                token=user,
                verify_url=f"https://sonata.example/verify-email?token={user}",
                expires_at=expires,
            )
        )
    return out


async def test_broker_restart_mid_burst_sends_each_notification_once(
    mongo_url: str, rabbit: PrivateRabbit
) -> None:
    with SmtpSink() as sink:
        env = notifications_env(
            mongo_url,
            rabbit.url,
            sink,
            extra=TUNING,
        )
        service: ServiceProcess = start_notifications(env)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
        rows = client[env["MONGODB_DB"]].notifications
        try:
            burst = events(BURST)
            started = time.monotonic()
            await publish_fast(rabbit.url, burst[: BURST // 2])

            # the sink is polled, not the database: counting there would slow the service
            async def consuming() -> bool:
                return len(sink.received()) >= BURST // 20

            await eventually(consuming, "the first emails", within=60)
            restart_began = time.monotonic() - started
            sent_at_restart = len(sink.received())
            await asyncio.to_thread(rabbit.restart)
            restart_took = time.monotonic() - started - restart_began
            before = len(sink.received())
            assert before < BURST // 2, "the restart came after the first half was sent"
            await publish_fast(rabbit.url, burst[BURST // 2 :])

            async def all_sent() -> bool:
                return len(sink.received()) >= BURST

            await eventually(all_sent, f"{BURST} emails", within=max(120, BURST / 8))
            elapsed = time.monotonic() - started
            await asyncio.sleep(1.0)  # a late duplicate would show up here

            ids = Counter(str(m["Message-ID"]) for m in sink.received())
            expected = {f"<{e.id}.email@sonata.notifications>" for e in burst}
            stored = await rows.count_documents({})
            stored_sent = await rows.count_documents({"status": "sent"})
            if RESULT_PATH:
                write_result(
                    Path(RESULT_PATH),
                    {
                        "benchmark": "notifications burst with a broker restart",
                        "date": datetime.now(UTC).isoformat(timespec="seconds"),
                        "machine": {
                            "cpus": os.cpu_count(),
                            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                        },
                        "events": BURST,
                        "sent": sum(ids.values()),
                        "distinct_sent": len(ids),
                        "duplicates": sum(n - 1 for n in ids.values()),
                        "missing": len(expected - set(ids)),
                        "unexpected": len(set(ids) - expected),
                        "records": stored,
                        "records_sent": stored_sent,
                        "seconds": round(elapsed, 1),
                        "restart": {
                            "published_before": BURST // 2,
                            "sent_when_stopped": sent_at_restart,
                            "sent_when_back": before,
                            "at_s": round(restart_began, 1),
                            "took_s": round(restart_took, 1),
                        },
                        "settings": TUNING,
                    },
                )
            assert len(ids) == BURST
            assert max(ids.values()) == 1, ids.most_common(3)
            assert set(ids) == expected
            assert stored == BURST
            assert stored_sent == BURST
            print(f"\n{BURST} events, broker restarted once: all sent once in {elapsed:.1f}s")
        finally:
            await client.close()
            service.stop()
        # The shared consumer and relay may log a supervised restart when the broker drops their
        # channel mid-operation; nothing of this service may fail.
        log = service.log_path.read_text(errors="replace")
        ours = [ln for ln in log.splitlines() if "Traceback" in ln and "sonata_notifications" in ln]
        assert ours == [], ours[:1]
        assert "unhandled error" not in log
