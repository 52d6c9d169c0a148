"""`sonata_notifications_failed_total{reason}` gets a bounded reason for each way the delivery
use case gives a notification up: the texts it records map onto the four reasons."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sonata_notifications.adapters.deliveries import FAILURE_REASONS, failure_reason
from sonata_notifications.domain.errors import PermanentSendError, TransientSendError
from sonata_notifications.domain.model import Channel, Rendered
from sonata_notifications.service_layer.delivery import RetryPolicy, deliver
from sonata_notifications.service_layer.ports import Claimed, Outgoing, Sender

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


class Recorder:
    """Deliveries that keeps the error a failure was recorded with."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
        return []

    async def sent(
        self, claimed: Claimed, provider_id: str, content: dict[str, str], now: datetime
    ) -> None:
        raise AssertionError("not sent in these cases")

    async def retry(self, claimed: Claimed, error: str, at: datetime, now: datetime) -> None:
        raise AssertionError("no retry in these cases")

    async def failed(self, claimed: Claimed, error: str, now: datetime) -> None:
        self.errors.append(error)


class Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def send(self, message: Outgoing) -> str:
        raise self.exc


class Clock:
    def now(self) -> datetime:
        return NOW


class Plain:
    def render(
        self, kind: str, channel: Channel, meta: dict[str, Any], unsubscribe_url: str | None
    ) -> Rendered:
        return Rendered(subject=kind, text="hello")


@pytest.mark.parametrize(
    ("senders", "attempts", "reason"),
    [
        ({"sms": Failing(PermanentSendError("21211 invalid number"))}, 1, "rejected"),
        ({"sms": Failing(TransientSendError("Twilio 503"))}, 3, "retries_exhausted"),
        ({}, 1, "not_configured"),
        ({"sms": Failing(KeyError("body"))}, 1, "internal_error"),
        ({"sms": Failing(RuntimeError("loop closed"))}, 3, "retries_exhausted"),
    ],
)
async def test_each_way_of_giving_up_has_its_reason(
    senders: dict[Channel, Sender], attempts: int, reason: str
) -> None:
    recorder = Recorder()
    claimed = Claimed("n1", "u1", "streak_at_risk", "sms", "+33600000000", {}, attempts, None, "e")
    policy = RetryPolicy(max_attempts=3, base_s=1, cap_s=10, lease_s=60)
    await deliver(claimed, recorder, senders, Plain(), Clock(), policy, "https://x")
    (error,) = recorder.errors
    assert failure_reason(error) == reason
    assert reason in FAILURE_REASONS
