"""The KPI projection: one domain event in, the day's counts and the current state out."""

from __future__ import annotations

from sonata_contracts import Event
from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_contracts.db import StreakChanged
from sonata_contracts.payment import SubscriptionChanged

from sonata_metrics.domain.kpis import (
    Streak,
    Subscription,
    active_learner,
    daily_counts,
    day_of,
    lifecycle_counts,
)
from sonata_metrics.service_layer.ports import KpiWriter


async def project(event: Event, store: KpiWriter) -> None:
    """Apply ``event`` once (the consumer's inbox drops a redelivery before this runs).

    State (subscriptions, streaks) keeps the latest by the event's time, so events arriving
    out of order leave the newest standing; counts go to the UTC day the event occurred.
    """
    day = day_of(event.occurred_at)
    counts = daily_counts(event)
    learner = active_learner(event)
    if learner is not None and await store.mark_active(day, learner):
        counts["active_learners"] = 1
    if isinstance(event, SubscriptionChanged):
        counts |= await _subscription(event, store)
    elif isinstance(event, StreakChanged):
        streak = Streak(
            event.user_id,
            event.days,
            event.status,
            event.on_day,
            event.occurred_at,
            str(event.id),
        )
        if streak.supersedes(await store.streak(event.user_id)):
            await store.save_streak(streak)
    elif isinstance(event, UserRegistered):
        await store.save_timezone(event.user_id, event.timezone)
    elif isinstance(event, UserDeleted):
        await store.forget_user(event.user_id)
    if counts:
        await store.add(day, counts)


async def _subscription(event: SubscriptionChanged, store: KpiWriter) -> dict[str, float]:
    new = Subscription(
        subscription_id=event.subscription_id,
        user_id=event.user_id,
        plan=event.plan,
        status=event.status,
        as_of=event.occurred_at,
        event_id=str(event.id),
    )
    old = await store.subscription(event.subscription_id)
    if not new.supersedes(old):
        return {}
    await store.save_subscription(new)
    return lifecycle_counts(old, new)
