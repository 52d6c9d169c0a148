"""Business KPIs as pure functions of the domain events: what a day counts, who was active,
which subscriptions are live and what they are worth a month, how streaks stand."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sonata_contracts import Event
from sonata_contracts.ai_scoring import PerformanceScored, SessionStarted
from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_contracts.db import AchievementUnlocked, MasteryReached
from sonata_contracts.notifications import NotificationFailed, NotificationSent
from sonata_contracts.payment import PaymentFailed, PaymentSucceeded

CHANNELS: tuple[str, ...] = ("email", "sms", "push")
# A subscription that still gives access, and the ones among them that bring in money.
LIVE_STATUSES = frozenset({"trialing", "active", "past_due"})
PAYING_STATUSES = frozenset({"active", "past_due"})
WEEK_DAYS = 7
MAX_RANGE_DAYS = 366
# db forgives at most 6 missed days per ISO week, so a running streak was practised within the
# last 13 days (db's own bound); past that it has ended even if no warning was heard.
MAX_STREAK_GAP_DAYS = 13
# The zone whose calendar day ends last (UTC-12), for a learner whose zone is not known.
LATEST_ZONE = "Etc/GMT+12"


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def daily_counts(event: Event) -> dict[str, float]:
    """What ``event`` adds to the counts of its UTC day (subscriptions aside: see
    ``lifecycle_counts``)."""
    match event:
        case UserRegistered():
            return {"signups": 1}
        case UserDeleted():
            return {"deletions": 1}
        case SessionStarted():
            return {"sessions_started": 1}
        case PerformanceScored():
            return {
                "performances": 1,
                "practice_seconds": max(event.duration_s, 0.0),
                "score_sum": event.overall_score,
            }
        case MasteryReached():
            return {"masteries": 1}
        case AchievementUnlocked():
            return {"achievements": 1}
        case PaymentSucceeded():
            return {"payments_succeeded": 1}
        case PaymentFailed():
            return {"payment_failures": 1}
        case NotificationSent():
            return {f"notifications_{event.channel}_sent": 1}
        case NotificationFailed():
            return {f"notifications_{event.channel}_failed": 1}
    return {}


def active_learner(event: Event) -> str | None:
    """The learner ``event`` shows practising, if any: starting or finishing a performance."""
    if isinstance(event, SessionStarted | PerformanceScored):
        return event.user_id
    return None


def week_of(day: date) -> tuple[date, date]:
    """The 7 days ending with ``day``: the window of its weekly active learners."""
    return day - timedelta(days=WEEK_DAYS - 1), day


def learners_by_day(learner_days: Iterable[tuple[date, str]]) -> dict[date, set[str]]:
    by_day: dict[date, set[str]] = {}
    for day, user in learner_days:
        by_day.setdefault(day, set()).add(user)
    return by_day


def weekly_active(by_day: Mapping[date, set[str]], day: date) -> int:
    """Distinct learners active in the 7 days ending with ``day``."""
    week = (by_day.get(day - timedelta(days=back), set()) for back in range(WEEK_DAYS))
    return len(set().union(*week))


def check_range(first: date, last: date) -> None:
    """ValueError unless ``first..last`` is a forward range of at most MAX_RANGE_DAYS days."""
    if last < first:
        raise ValueError("`to` is before `from`")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValueError(f"a range covers at most {MAX_RANGE_DAYS} days")


@dataclass(frozen=True)
class PlanPrice:
    amount_cents: int
    interval: Literal["month", "year"]

    @property
    def monthly_cents(self) -> float:
        return self.amount_cents / 12 if self.interval == "year" else float(self.amount_cents)


@dataclass(frozen=True)
class Subscription:
    """The latest known state of one subscription, ordered by the event's time then id."""

    subscription_id: str
    user_id: str
    plan: str
    status: str
    as_of: datetime
    event_id: str

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def paying(self) -> bool:
        return self.status in PAYING_STATUSES

    def supersedes(self, other: Subscription | None) -> bool:
        return other is None or (self.as_of, self.event_id) > (other.as_of, other.event_id)


def lifecycle_counts(old: Subscription | None, new: Subscription) -> dict[str, float]:
    """A subscription that becomes live is started; a live one that ends is canceled."""
    was_live = old is not None and old.live
    if new.live and not was_live:
        return {"subscriptions_started": 1}
    if was_live and not new.live:
        return {"subscriptions_canceled": 1}
    return {}


def active_by_plan(subscriptions: Iterable[Subscription]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in subscriptions:
        if s.live:
            counts[s.plan] = counts.get(s.plan, 0) + 1
    return counts


def mrr_by_plan(
    subscriptions: Iterable[Subscription], prices: Mapping[str, PlanPrice]
) -> dict[str, float]:
    """Monthly recurring revenue in cents per plan: paying subscriptions at their monthly
    price (a yearly plan counts a twelfth). A plan missing from ``prices`` counts 0."""
    mrr: dict[str, float] = {}
    for s in subscriptions:
        if s.paying:
            price = prices.get(s.plan)
            mrr[s.plan] = mrr.get(s.plan, 0.0) + (price.monthly_cents if price else 0.0)
    return {plan: round(cents, 2) for plan, cents in mrr.items()}


@dataclass(frozen=True)
class Streak:
    """A learner's streak as db last announced it. ``on_day`` is the learner's local day:
    the day practised (``extended``, or ``broken`` and restarted at ``days``), or the day not
    yet practised whose miss ends the streak (``at_risk``)."""

    user_id: str
    days: int
    status: str  # extended | broken | at_risk
    on_day: date
    as_of: datetime
    event_id: str

    def running(self, today: date) -> bool:
        """Still running on the learner's local ``today``: db announces a streak's end only
        when the learner plays again, so a streak nobody continued expires here."""
        if self.days <= 0:
            return False
        if self.status == "at_risk":
            return today <= self.on_day
        return (today - self.on_day).days <= MAX_STREAK_GAP_DAYS

    def _order(self) -> tuple[date, bool, datetime, str]:
        # A later local day first; on one day, having practised it beats a warning about it,
        # whatever the clocks say (db's sweep may warn just as the day's first take lands).
        return (self.on_day, self.status != "at_risk", self.as_of, self.event_id)

    def supersedes(self, other: Streak | None) -> bool:
        return other is None or self._order() > other._order()


def local_day(now: datetime, timezone: str | None) -> date:
    """The calendar day at ``now`` in the learner's zone; an unknown zone counts as the one
    whose day ends last, so a streak is never cut before its learner's midnight."""
    try:
        zone = ZoneInfo(timezone or LATEST_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo(LATEST_ZONE)
    return now.astimezone(zone).date()


@dataclass(frozen=True)
class StreakFigures:
    active: int
    at_risk: int
    longest_days: int


def streak_figures(
    streaks: Iterable[Streak], now: datetime, timezones: Mapping[str, str]
) -> StreakFigures:
    """Running streaks at ``now``, each judged on its learner's own calendar day."""
    live = [s for s in streaks if s.running(local_day(now, timezones.get(s.user_id)))]
    return StreakFigures(
        active=len(live),
        at_risk=sum(1 for s in live if s.status == "at_risk"),
        longest_days=max((s.days for s in live), default=0),
    )


@dataclass(frozen=True)
class ChannelFigures:
    sent: int
    failed: int

    @property
    def delivery_rate(self) -> float | None:
        attempted = self.sent + self.failed
        return round(self.sent / attempted, 4) if attempted else None


@dataclass(frozen=True)
class DayRollup:
    day: date
    active_learners: int
    weekly_active_learners: int
    signups: int
    deletions: int
    sessions_started: int
    performances: int
    minutes_practised: float
    average_score: float | None
    masteries: int
    achievements: int
    payments_succeeded: int
    payment_failures: int
    subscriptions_started: int
    subscriptions_canceled: int
    notifications: dict[str, ChannelFigures] = field(default_factory=dict)


def rollup(day: date, counts: Mapping[str, float], dau: int, wau: int) -> DayRollup:
    def n(key: str) -> int:
        return int(counts.get(key, 0))

    performances = n("performances")
    return DayRollup(
        day=day,
        active_learners=dau,
        weekly_active_learners=wau,
        signups=n("signups"),
        deletions=n("deletions"),
        sessions_started=n("sessions_started"),
        performances=performances,
        minutes_practised=round(counts.get("practice_seconds", 0.0) / 60, 2),
        average_score=(
            round(counts.get("score_sum", 0.0) / performances, 2) if performances else None
        ),
        masteries=n("masteries"),
        achievements=n("achievements"),
        payments_succeeded=n("payments_succeeded"),
        payment_failures=n("payment_failures"),
        subscriptions_started=n("subscriptions_started"),
        subscriptions_canceled=n("subscriptions_canceled"),
        notifications={
            c: ChannelFigures(n(f"notifications_{c}_sent"), n(f"notifications_{c}_failed"))
            for c in CHANNELS
        },
    )
