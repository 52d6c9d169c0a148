"""The one place that builds the real senders, clock and loops from the settings."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pymongo.errors import DuplicateKeyError
from sonata_kit import Runtime
from sonata_messaging import Transaction

from sonata_notifications.adapters.deliveries import MongoDeliveries
from sonata_notifications.adapters.email import SmtpSender
from sonata_notifications.adapters.push import WebPushSender
from sonata_notifications.adapters.rendering import JinjaRenderer
from sonata_notifications.adapters.repository import MongoStore
from sonata_notifications.adapters.sms import TwilioSender
from sonata_notifications.domain.model import Channel
from sonata_notifications.service_layer import account
from sonata_notifications.service_layer.delivery import RetryPolicy, deliver_due
from sonata_notifications.service_layer.handlers import Policy
from sonata_notifications.service_layer.ports import Sender, Store
from sonata_notifications.service_layer.reminders import (
    send_assignment_reminders,
    send_due_reminders,
)
from sonata_notifications.settings import NotificationsSettings

log = logging.getLogger("sonata.notifications")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ShiftedClock:
    """Real time moved by a fixed offset: the scheduler's clock in demos and tests."""

    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self.offset_s, UTC)


@dataclass
class Wiring:
    settings: NotificationsSettings
    senders: dict[Channel, Sender] = field(default_factory=dict)
    renderer: JinjaRenderer = field(default_factory=JinjaRenderer)
    clock: SystemClock = field(default_factory=SystemClock)
    scheduler_clock: SystemClock | ShiftedClock = field(default_factory=SystemClock)

    @property
    def policy(self) -> Policy:
        return Policy(rate_limit_per_hour=self.settings.rate_limit_per_hour)

    @property
    def retry(self) -> RetryPolicy:
        s = self.settings
        return RetryPolicy(
            s.send_max_attempts,
            s.send_retry_base_s,
            s.send_retry_max_s,
            lease_s=s.send_timeout_s * 4,
            batch=s.dispatch_concurrency * 4,
            concurrency=s.dispatch_concurrency,
        )


def wire(settings: NotificationsSettings) -> Wiring:
    w = Wiring(settings)
    if settings.scheduler_clock_start is not None:
        w.scheduler_clock = ShiftedClock(settings.clock_offset(datetime.now(UTC)))
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    w.senders["email"] = SmtpSender(
        settings.smtp_host,
        settings.smtp_port,
        settings.mail_from,
        username=settings.smtp_username,
        password=password,
        starttls=settings.smtp_starttls,
        timeout=settings.send_timeout_s,
    )
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from_number:
        w.senders["sms"] = TwilioSender(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_from_number,
            f"{settings.public_base_url.rstrip('/')}/v1/twilio/status",
            api_url=settings.twilio_api_url,
            timeout=settings.send_timeout_s,
        )
    if settings.vapid_private_key is not None:
        w.senders["push"] = WebPushSender(
            settings.vapid_private_key.get_secret_value(),
            settings.vapid_subject,
            settings.send_timeout_s,
        )
    return w


async def dispatch_forever(runtime: Runtime, w: Wiring) -> None:
    deliveries = MongoDeliveries(runtime.client, runtime.outbox)

    async def sms_sent(sid: str) -> int:
        async def release(tx: Transaction) -> int:
            return await account.release_held_sms_statuses(
                MongoStore(tx.session), sid, w.clock.now()
            )

        return await runtime.transaction(release)

    while True:
        try:
            claimed = await deliver_due(
                deliveries,
                w.senders,
                w.renderer,
                w.clock,
                w.retry,
                w.settings.public_base_url,
                sms_sent,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            # The rows keep their lease and are retried when it runs out; keep dispatching.
            log.exception("delivery failed unexpectedly")
            claimed = 0
        if not claimed:
            await asyncio.sleep(w.settings.dispatch_poll_interval_s)


async def schedule_forever(runtime: Runtime, w: Wiring) -> None:
    async def in_transaction(fn: Callable[[Store], Awaitable[bool]]) -> bool:
        async def run(tx: Transaction) -> bool:
            return await fn(MongoStore(tx.session))

        try:
            return await runtime.transaction(run)
        except DuplicateKeyError:
            return False  # another replica queued the same reminder first

    while True:
        try:
            store = MongoStore(None)
            clock = w.scheduler_clock
            candidates = await store.reminder_users()
            count = await send_due_reminders(candidates, in_transaction, clock, w.policy)
            lead = timedelta(hours=w.settings.assignment_due_lead_h)
            dues = await store.assignments_due(clock.now() + lead)
            count += await send_assignment_reminders(dues, in_transaction, clock, w.policy)
            if count:
                log.info("queued %d reminders", count)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reminder pass failed; trying again next interval")
        await asyncio.sleep(w.settings.scheduler_interval_s)
