"""Send one due notification: render, hand to the channel's provider, record the outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from sonata_messaging import correlation_scope

from sonata_notifications.domain.errors import PermanentSendError, TransientSendError
from sonata_notifications.domain.model import Channel, retry_delay
from sonata_notifications.service_layer.ports import (
    Claimed,
    Clock,
    Deliveries,
    Outgoing,
    Renderer,
    Sender,
)

log = logging.getLogger("sonata.notifications.delivery")
# Errors that come back the same on every try: the notification fails at once.
DETERMINISTIC = (ArithmeticError, AttributeError, LookupError, TypeError, ValueError)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    cap_s: float
    lease_s: float
    batch: int = 64
    concurrency: int = 8


def unsubscribe_url(public_base_url: str, token: str | None) -> str | None:
    return f"{public_base_url.rstrip('/')}/v1/unsubscribe/{token}" if token else None


async def deliver_due(
    deliveries: Deliveries,
    senders: Mapping[Channel, Sender],
    renderer: Renderer,
    clock: Clock,
    policy: RetryPolicy,
    public_base_url: str,
    sms_sent: Callable[[str], Awaitable[object]] | None = None,
) -> int:
    """Claim up to ``policy.batch`` due notifications and send them, ``policy.concurrency`` at
    a time; returns how many were claimed (0: nothing is due)."""
    now = clock.now()
    batch = await deliveries.claim_due(now, now + timedelta(seconds=policy.lease_s), policy.batch)
    gate = asyncio.Semaphore(policy.concurrency)

    async def one(claimed: Claimed) -> None:
        async with gate:
            await deliver(
                claimed, deliveries, senders, renderer, clock, policy, public_base_url, sms_sent
            )

    results = await asyncio.gather(*(one(c) for c in batch), return_exceptions=True)
    # A notification whose outcome could not be recorded keeps its lease and is retried when
    # the lease runs out; the first such error is still raised for the caller to log.
    for result in results:
        if isinstance(result, Exception):
            raise result
    return len(batch)


async def deliver(
    claimed: Claimed,
    deliveries: Deliveries,
    senders: Mapping[Channel, Sender],
    renderer: Renderer,
    clock: Clock,
    policy: RetryPolicy,
    public_base_url: str,
    sms_sent: Callable[[str], Awaitable[object]] | None = None,
) -> None:
    """Send one claimed notification and record how it went; ``sms_sent`` is told the
    provider id of each text once its send is recorded (status callbacks may precede it).
    Logs, and the events it publishes, carry the correlation id of the event behind it."""
    with correlation_scope(claimed.meta.get("correlation_id")):
        await _deliver(
            claimed, deliveries, senders, renderer, clock, policy, public_base_url, sms_sent
        )


async def _deliver(
    claimed: Claimed,
    deliveries: Deliveries,
    senders: Mapping[Channel, Sender],
    renderer: Renderer,
    clock: Clock,
    policy: RetryPolicy,
    public_base_url: str,
    sms_sent: Callable[[str], Awaitable[object]] | None,
) -> None:
    if claimed.attempts > policy.max_attempts:
        # claimed again after its lease ran out, attempt after attempt: the send never finished
        error = f"gave up after {claimed.attempts - 1} attempts: the send never completed"
        await deliveries.failed(claimed, error, clock.now())
        return
    sender = senders.get(claimed.channel)
    if sender is None:
        error = f"the {claimed.channel} channel is not configured"
        await deliveries.failed(claimed, error, clock.now())
        return
    try:
        link = unsubscribe_url(public_base_url, claimed.unsubscribe_token)
        rendered = renderer.render(claimed.kind, claimed.channel, claimed.meta, link)
        message = Outgoing(
            user_id=claimed.user_id,
            kind=claimed.kind,
            channel=claimed.channel,
            to=claimed.to,
            rendered=rendered,
            idempotency_key=f"{claimed.source_event_id}:{claimed.channel}",
            extra={"unsubscribe_url": link} if link else {},
        )
        provider_id = await sender.send(message)
    except PermanentSendError as exc:
        await deliveries.failed(claimed, str(exc), clock.now())
    except TransientSendError as exc:
        await _retry_or_give_up(claimed, str(exc), deliveries, clock, policy)
    except DETERMINISTIC as exc:
        # bad data (a malformed key, a template that cannot render it): the same every time
        log.warning("notification %s cannot be sent: %r", claimed.id, exc)
        await deliveries.failed(claimed, unexpected(exc), clock.now())
    except Exception as exc:
        log.exception("notification %s: unexpected error while sending", claimed.id)
        await _retry_or_give_up(claimed, unexpected(exc), deliveries, clock, policy)
    else:
        content = {"subject": rendered.subject, "text": rendered.text}
        if rendered.html is not None:
            content["html"] = rendered.html
        await deliveries.sent(claimed, provider_id, content, clock.now())
        log.info("sent %s %s on %s (%s)", claimed.kind, claimed.id, claimed.channel, provider_id)
        if claimed.channel == "sms" and sms_sent is not None:
            await sms_sent(provider_id)


def unexpected(exc: Exception) -> str:
    return f"unexpected error: {type(exc).__name__}: {exc}"[:500]


async def _retry_or_give_up(
    claimed: Claimed, error: str, deliveries: Deliveries, clock: Clock, policy: RetryPolicy
) -> None:
    later = clock.now()
    if claimed.attempts >= policy.max_attempts:
        await deliveries.failed(
            claimed, f"gave up after {claimed.attempts} attempts: {error}", later
        )
    else:
        wait = retry_delay(claimed.attempts, policy.base_s, policy.cap_s)
        await deliveries.retry(claimed, error, later + wait, later)
