"""The delivery use case with in-memory fakes of its ports: retries with backoff, gives up,
records permanent failures, and renders the unsubscribe link into what it hands the sender."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sonata_notifications.domain.errors import PermanentSendError, TransientSendError
from sonata_notifications.domain.model import Channel, Rendered
from sonata_notifications.service_layer.delivery import RetryPolicy, deliver_due
from sonata_notifications.service_layer.ports import Claimed, Outgoing

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base_s=10, cap_s=300, lease_s=60)


class FakeClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


@dataclass
class Row:
    claimed: Claimed
    status: str = "queued"
    due: datetime = T0
    error: str | None = None
    provider_id: str | None = None


@dataclass
class FakeDeliveries:
    rows: list[Row] = field(default_factory=list)

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
        claimed = []
        for row in self.rows[:limit]:
            if row.status == "queued" and row.due <= now:
                row.status = "sending"
                row.claimed = replace(row.claimed, attempts=row.claimed.attempts + 1)
                claimed.append(row.claimed)
        return claimed

    def _row(self, claimed: Claimed) -> Row:
        return next(r for r in self.rows if r.claimed.id == claimed.id)

    async def sent(
        self, claimed: Claimed, provider_id: str, content: dict[str, str], now: datetime
    ) -> None:
        row = self._row(claimed)
        row.status, row.provider_id = "sent", provider_id

    async def retry(self, claimed: Claimed, error: str, at: datetime, now: datetime) -> None:
        row = self._row(claimed)
        row.status, row.error, row.due = "queued", error, at

    async def failed(self, claimed: Claimed, error: str, now: datetime) -> None:
        row = self._row(claimed)
        row.status, row.error = "failed", error


class ScriptedSender:
    def __init__(self, *outcomes: Exception | str) -> None:
        self.outcomes = list(outcomes)
        self.seen: list[Outgoing] = []

    async def send(self, message: Outgoing) -> str:
        self.seen.append(message)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class EchoRenderer:
    def render(
        self, kind: str, channel: Channel, meta: dict[str, Any], unsubscribe_url: str | None
    ) -> Rendered:
        return Rendered(subject=kind, text=f"{meta} {unsubscribe_url}")


def claimed(token: str | None = "tok") -> Claimed:
    return Claimed("n1", "u1", "achievement", "email", "a@b.c", {}, 0, token, "evt-1")


async def run(deliveries: FakeDeliveries, sender: ScriptedSender, clock: FakeClock) -> int:
    return await deliver_due(
        deliveries, {"email": sender}, EchoRenderer(), clock, POLICY, "https://x/api/n"
    )


async def test_transient_failures_back_off_then_succeed() -> None:
    deliveries, clock = FakeDeliveries([Row(claimed())]), FakeClock()
    sender = ScriptedSender(TransientSendError("451"), TransientSendError("451"), "msg-1")
    assert await run(deliveries, sender, clock) == 1
    assert deliveries.rows[0].due == T0 + timedelta(seconds=10)
    assert await run(deliveries, sender, clock) == 0  # not due yet
    clock.at = T0 + timedelta(seconds=10)
    await run(deliveries, sender, clock)
    assert deliveries.rows[0].due == T0 + timedelta(seconds=30)  # 10 s after, doubled
    clock.at = T0 + timedelta(seconds=30)
    await run(deliveries, sender, clock)
    assert (deliveries.rows[0].status, deliveries.rows[0].provider_id) == ("sent", "msg-1")
    assert sender.seen[0].extra == {"unsubscribe_url": "https://x/api/n/v1/unsubscribe/tok"}
    assert {m.idempotency_key for m in sender.seen} == {"evt-1:email"}


async def test_gives_up_after_the_last_attempt() -> None:
    deliveries, clock = FakeDeliveries([Row(claimed())]), FakeClock()
    sender = ScriptedSender(*(TransientSendError("down") for _ in range(3)))
    for _ in range(3):
        await run(deliveries, sender, clock)
        clock.at += timedelta(minutes=10)
    assert deliveries.rows[0].status == "failed"
    assert deliveries.rows[0].error == "gave up after 3 attempts: down"


async def test_permanent_failure_is_recorded_at_once() -> None:
    deliveries, clock = FakeDeliveries([Row(claimed(token=None))]), FakeClock()
    await run(deliveries, ScriptedSender(PermanentSendError("550 no such user")), clock)
    assert (deliveries.rows[0].status, deliveries.rows[0].error) == ("failed", "550 no such user")


async def test_a_batch_is_sent_concurrently_and_each_outcome_recorded() -> None:
    rows = [Row(replace(claimed(), id=f"n{i}", source_event_id=f"e{i}")) for i in range(5)]
    deliveries, clock = FakeDeliveries(rows), FakeClock()
    sender = ScriptedSender("a", PermanentSendError("550"), "c", TransientSendError("451"), "e")
    assert await run(deliveries, sender, clock) == 5
    assert [r.status for r in rows] == ["sent", "failed", "sent", "queued", "sent"]
    assert sorted(m.idempotency_key for m in sender.seen) == [f"e{i}:email" for i in range(5)]


async def test_unconfigured_channel_fails_visibly() -> None:
    row = Row(replace(claimed(), channel="sms"))
    deliveries = FakeDeliveries([row])
    await run(deliveries, ScriptedSender(), FakeClock())
    assert (row.status, row.error) == ("failed", "the sms channel is not configured")


async def test_an_error_that_comes_back_every_time_fails_the_notification_at_once() -> None:
    row = Row(claimed())
    deliveries = FakeDeliveries([row])
    await run(deliveries, ScriptedSender(IndexError("index out of range")), FakeClock())
    assert row.status == "failed"
    assert row.error == "unexpected error: IndexError: index out of range"


async def test_an_unexpected_error_counts_as_an_attempt_until_the_last() -> None:
    deliveries, clock = FakeDeliveries([Row(claimed())]), FakeClock()
    sender = ScriptedSender(*(RuntimeError("socket pool closed") for _ in range(3)))
    await run(deliveries, sender, clock)
    assert (deliveries.rows[0].status, deliveries.rows[0].due) == (
        "queued",
        T0 + timedelta(seconds=10),
    )
    for _ in range(2):
        clock.at += timedelta(minutes=10)
        await run(deliveries, sender, clock)
    assert deliveries.rows[0].status == "failed"
    assert deliveries.rows[0].error == (
        "gave up after 3 attempts: unexpected error: RuntimeError: socket pool closed"
    )


async def test_a_send_whose_lease_ran_out_too_often_is_given_up() -> None:
    # claimed for the fourth time: three workers died (or hung) while sending it
    row = Row(replace(claimed(), attempts=POLICY.max_attempts))
    deliveries = FakeDeliveries([row])
    sender = ScriptedSender("never")
    await run(deliveries, sender, FakeClock())
    assert (row.status, row.error) == (
        "failed",
        "gave up after 3 attempts: the send never completed",
    )
    assert sender.seen == []
