"""Turn the fleet's facts into notification records, one per channel the rules allow."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sonata_contracts import Event
from sonata_contracts.ai_scoring import PerformanceScored
from sonata_contracts.auth import (
    EmailVerificationRequested,
    PasswordResetRequested,
    PhoneVerificationRequested,
    UserDeleted,
    UserRegistered,
)
from sonata_contracts.db import (
    AchievementUnlocked,
    AssignmentCompleted,
    AssignmentCreated,
    MasteryReached,
    PerformanceRecorded,
    StreakChanged,
)
from sonata_contracts.payment import PaymentFailed, PaymentSucceeded, SubscriptionChanged

from sonata_notifications.domain.model import (
    KINDS,
    Budget,
    Channel,
    Preferences,
    decide,
    local_day,
)
from sonata_notifications.service_layer.ports import ContactView, NewNotification, Store

# event type -> (kind, event fields kept for the templates)
ROUTES: dict[type[Event], tuple[str, tuple[str, ...]]] = {
    UserRegistered: ("welcome", ("display_name",)),
    EmailVerificationRequested: ("email_verification", ("verify_url", "expires_at")),
    PhoneVerificationRequested: ("phone_verification", ("code", "expires_at")),
    PasswordResetRequested: ("password_reset", ("reset_url", "expires_at")),
    PerformanceScored: ("performance_summary", ("piece_id", "overall_score", "subscores")),
    AchievementUnlocked: ("achievement", ("achievement", "title")),
    MasteryReached: ("mastery", ("piece_id", "section")),
    StreakChanged: ("streak_at_risk", ("days", "status")),
    AssignmentCreated: ("assignment_created", ("piece_id", "due_at", "target_score")),
    PaymentSucceeded: (
        "payment_receipt",
        ("amount_cents", "currency", "description", "receipt_url"),
    ),
    PaymentFailed: ("payment_failed", ("amount_cents", "currency", "reason", "grace_until")),
    SubscriptionChanged: ("subscription_changed", ("plan", "status", "cancel_at_period_end")),
}


@dataclass(frozen=True)
class Policy:
    rate_limit_per_hour: int


def _recipient(event: Event) -> str | None:
    if isinstance(event, AssignmentCreated):
        return event.student_id
    user_id = getattr(event, "user_id", None)
    return user_id if isinstance(user_id, str) else None


async def queue(
    store: Store,
    *,
    user_id: str | None,
    kind_name: str,
    source_event_id: str,
    meta: dict[str, Any],
    now: datetime,
    policy: Policy,
    email: str | None = None,
    phone: str | None = None,
) -> int:
    """Record one notification per channel of the kind; returns how many will go out."""
    kind = KINDS[kind_name]
    contact: ContactView | None = None
    prefs: Preferences | None = None
    # Looked up only when needed: an account email that carries its address costs no reads.
    addressed = (c for c in kind.channels if c != "push")
    if user_id is not None and any(_address(c, email, phone, None) is None for c in addressed):
        contact = await store.contact(user_id)
    # SMS needs the user's opt-in whatever the kind
    if user_id is not None and (not kind.transactional or "sms" in kind.channels):
        prefs = await store.preferences(user_id)
    # the reader's zone for the times in the message, when already known without another read
    timezone = prefs.timezone if prefs is not None else (contact.timezone if contact else None)
    if timezone:
        meta = {**meta, "timezone": timezone}
    if prefs is None:
        prefs = Preferences()
    queued = 0
    for index, channel in enumerate(kind.channels):
        to = _address(channel, email, phone, contact)
        reachable = to is not None or (
            channel == "push" and user_id is not None and await store.has_push(user_id)
        )
        if not reachable and index > 0:
            continue  # a secondary channel the user never set up: nothing to record
        if not reachable:
            note = _record(user_id, kind_name, channel, None, source_event_id, meta, now)
            await store.add(note.failed("no address known for this user"))
            continue
        blocked = channel == "sms" and to is not None and await store.sms_blocked(to)
        sent = 0
        if not kind.transactional and user_id is not None:
            sent = await store.sent_since(
                user_id, channel, now - timedelta(hours=1), policy.rate_limit_per_hour
            )
        decision = decide(
            kind, channel, prefs, now, Budget(policy.rate_limit_per_hour, sent), sms_blocked=blocked
        )
        note = _record(user_id, kind_name, channel, to, source_event_id, meta, now)
        note = note.decided(
            decision.status,
            decision.reason,
            decision.consent,
            decision.not_before,
            kind.transactional,
        )
        if await store.add(note.build()) and decision.status == "queued":
            queued += 1
    return queued


def _address(
    channel: Channel, email: str | None, phone: str | None, contact: ContactView | None
) -> str | None:
    if channel == "email":
        return email or (contact.email if contact else None)
    if channel == "sms":
        return phone or (contact.phone if contact else None)
    return None


@dataclass
class _Draft:
    fields: dict[str, Any]

    def failed(self, error: str) -> NewNotification:
        self.fields.update(status="failed", error=error, consent="none", next_attempt_at=None)
        return NewNotification(**self.fields)

    def decided(
        self,
        status: str,
        reason: str | None,
        consent: str,
        not_before: datetime,
        transactional: bool,
    ) -> _Draft:
        self.fields.update(
            status=status,
            error=reason,
            consent=consent,
            next_attempt_at=not_before if status == "queued" else None,
            unsubscribe_token=None if transactional else secrets.token_urlsafe(24),
        )
        return self

    def build(self) -> NewNotification:
        return NewNotification(**self.fields)


def _record(
    user_id: str | None,
    kind: str,
    channel: Channel,
    to: str | None,
    source_event_id: str,
    meta: dict[str, Any],
    now: datetime,
) -> _Draft:
    return _Draft(
        {
            "user_id": user_id,
            "kind": kind,
            "channel": channel,
            "to": to,
            "status": "queued",
            "error": None,
            "consent": "transactional",
            "unsubscribe_token": None,
            "source_event_id": source_event_id,
            "meta": meta,
            "created_at": now,
            "next_attempt_at": now,
        }
    )


async def on_event(
    event: Event,
    store: Store,
    now: datetime,
    policy: Policy,
    correlation_id: str | None = None,
) -> None:
    """The consumer's single entry: remember what the event tells, then notify. The
    correlation id of the request behind the event is kept in the record's meta, so the send is
    logged under it too."""
    user_id = _recipient(event)
    if isinstance(event, UserRegistered):
        await store.save_contact(
            event.user_id,
            {
                "email": event.email,
                "display_name": event.display_name,
                "locale": event.locale,
                "timezone": event.timezone,
            },
        )
    if isinstance(event, PhoneVerificationRequested):
        await store.save_contact(event.user_id, {"phone": event.phone})
    if isinstance(event, (PerformanceRecorded, PerformanceScored)):
        played = event.played_at if isinstance(event, PerformanceRecorded) else event.finished_at
        # the store falls back to the contact's timezone when the user set none
        prefs = await store.preferences(event.user_id)
        await store.mark_practised(event.user_id, local_day(played, prefs.timezone).isoformat())
    if isinstance(event, AssignmentCreated) and event.due_at is not None:
        await store.track_assignment(
            event.assignment_id, event.student_id, event.piece_id, event.due_at
        )
    if isinstance(event, AssignmentCompleted):
        await store.close_assignment(event.assignment_id)
    if isinstance(event, StreakChanged) and event.status != "at_risk":
        if event.status == "extended":
            await store.mark_practised(event.user_id, event.on_day.isoformat())
        return
    if type(event) not in ROUTES:
        return
    kind, kept = ROUTES[type(event)]
    meta: dict[str, Any] = event.model_dump(mode="json", include=set(kept))
    if correlation_id := correlation_id or event.correlation_id:
        meta["correlation_id"] = correlation_id
    await queue(
        store,
        user_id=user_id,
        kind_name=kind,
        source_event_id=str(event.id),
        meta=meta,
        now=now,
        policy=policy,
        email=getattr(event, "email", None),
        phone=getattr(event, "phone", None),
    )


async def forget_user(event: UserDeleted, store: Store) -> None:
    await store.erase_user(event.user_id)


HANDLED: tuple[type[Event], ...] = (*ROUTES, PerformanceRecorded, AssignmentCompleted)
