"""The KPI projection over an in-memory store: what the business figures say after a stream
of events, in any order, with redeliveries."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sonata_contracts import Event
from sonata_contracts.ai_scoring import PerformanceScored, SessionStarted
from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_contracts.db import MasteryReached, StreakChanged
from sonata_contracts.notifications import NotificationFailed, NotificationSent
from sonata_contracts.payment import PaymentFailed, SubscriptionChanged
from sonata_metrics.domain.kpis import PlanPrice, Streak, Subscription, check_range
from sonata_metrics.service_layer.projection import project
from sonata_metrics.service_layer.queries import daily, summary

PRICES = {
    "premium_monthly": PlanPrice(999, "month"),
    "premium_yearly": PlanPrice(9900, "year"),
}
MONDAY = datetime(2031, 3, 3, 12, 0, tzinfo=UTC)


class MemoryStore:
    """KpiWriter and KpiReader over dicts."""

    def __init__(self) -> None:
        self.days: dict[date, dict[str, float]] = {}
        self.active: set[tuple[date, str]] = set()
        self.subs: dict[str, Subscription] = {}
        self.streak_rows: dict[str, Streak] = {}
        self.zones: dict[str, str] = {}

    async def add(self, day: date, counts: Mapping[str, float]) -> None:
        row = self.days.setdefault(day, {})
        for k, v in counts.items():
            row[k] = row.get(k, 0) + v

    async def mark_active(self, day: date, user_id: str) -> bool:
        fresh = (day, user_id) not in self.active
        self.active.add((day, user_id))
        return fresh

    async def subscription(self, subscription_id: str) -> Subscription | None:
        return self.subs.get(subscription_id)

    async def save_subscription(self, subscription: Subscription) -> None:
        self.subs[subscription.subscription_id] = subscription

    async def streak(self, user_id: str) -> Streak | None:
        return self.streak_rows.get(user_id)

    async def save_streak(self, streak: Streak) -> None:
        self.streak_rows[streak.user_id] = streak

    async def save_timezone(self, user_id: str, timezone: str) -> None:
        self.zones[user_id] = timezone

    async def forget_user(self, user_id: str) -> None:
        self.active = {(d, "erased" if u == user_id else u) for d, u in self.active}
        self.streak_rows.pop(user_id, None)
        self.zones.pop(user_id, None)

    async def counts(self, first: date, last: date) -> dict[date, dict[str, float]]:
        return {d: c for d, c in self.days.items() if first <= d <= last}

    async def learner_days(self, first: date, last: date) -> list[tuple[date, str]]:
        return [(d, u) for d, u in self.active if first <= d <= last]

    async def subscriptions(self) -> list[Subscription]:
        return list(self.subs.values())

    async def streaks(self) -> list[Streak]:
        return list(self.streak_rows.values())

    async def timezones(self, user_ids: list[str]) -> dict[str, str]:
        return {u: self.zones[u] for u in user_ids if u in self.zones}


def scored(user: str, at: datetime, score: float, duration_s: float = 300) -> PerformanceScored:
    return PerformanceScored(
        performance_id=f"p-{user}-{at.isoformat()}",
        session_id="s",
        user_id=user,
        piece_id="piece",
        piece_version=1,
        started_at=at - timedelta(seconds=duration_s),
        finished_at=at,
        duration_s=duration_s,
        overall_score=score,
        subscores={},
        report={},
        occurred_at=at,
    )


def started(user: str, at: datetime) -> SessionStarted:
    return SessionStarted(
        session_id="s", user_id=user, piece_id="p", piece_version=1, started_at=at, occurred_at=at
    )


def sub(sub_id: str, plan: str, status: str, at: datetime, user: str = "u1") -> SubscriptionChanged:
    return SubscriptionChanged(
        user_id=user,
        subscription_id=sub_id,
        plan=plan,
        status=status,
        cancel_at_period_end=False,
        current_period_end=None,
        occurred_at=at,
    )


async def feed(store: MemoryStore, events: list[Event]) -> None:
    for event in events:
        await project(event, store)


async def test_daily_and_weekly_active_learners_count_each_learner_once() -> None:
    store = MemoryStore()
    await feed(
        store,
        [
            # ana practises twice on Monday and once on Wednesday; ben only starts on Monday
            started("ana", MONDAY),
            scored("ana", MONDAY + timedelta(minutes=5), 80),
            scored("ana", MONDAY + timedelta(hours=1), 90),
            started("ben", MONDAY + timedelta(hours=2)),
            scored("ana", MONDAY + timedelta(days=2), 70),
            # cleo signs up but never plays: not an active learner
            UserRegistered(
                user_id="cleo",
                email="c@example.com",
                display_name="C",
                roles=["student"],
                locale="en",
                timezone="UTC",
                occurred_at=MONDAY,
            ),
            # dan plays 8 days after Monday: outside Monday's week, inside next Monday's
            scored("dan", MONDAY + timedelta(days=7), 60),
        ],
    )
    days = await daily(store, MONDAY.date(), MONDAY.date() + timedelta(days=7))
    by_day = {d.day: d for d in days}
    monday = by_day[MONDAY.date()]
    assert (monday.active_learners, monday.weekly_active_learners) == (2, 2)
    assert monday.signups == 1
    assert (monday.performances, monday.sessions_started) == (2, 2)
    assert monday.minutes_practised == 10.0
    assert monday.average_score == 85.0
    wednesday = by_day[MONDAY.date() + timedelta(days=2)]
    assert (wednesday.active_learners, wednesday.weekly_active_learners) == (1, 2)
    tuesday = by_day[MONDAY.date() + timedelta(days=1)]
    assert (tuesday.active_learners, tuesday.average_score) == (0, None)
    next_monday = by_day[MONDAY.date() + timedelta(days=7)]
    # the week ending next Monday starts on Tuesday: ana (Wednesday) and dan, not ben
    assert (next_monday.active_learners, next_monday.weekly_active_learners) == (1, 2)
    assert len(days) == 8


async def test_mrr_follows_upgrades_and_cancellations_by_plan() -> None:
    store = MemoryStore()
    t = MONDAY
    await feed(
        store,
        [
            sub("s1", "premium_monthly", "active", t, user="u1"),
            sub("s2", "premium_monthly", "trialing", t, user="u2"),
            sub("s3", "premium_monthly", "active", t, user="u3"),
            # u1 upgrades to yearly: same subscription, new plan
            sub("s1", "premium_yearly", "active", t + timedelta(hours=1), user="u1"),
            # u3 cancels; u2's trial converts
            sub("s3", "premium_monthly", "canceled", t + timedelta(hours=2), user="u3"),
            sub("s2", "premium_monthly", "active", t + timedelta(hours=3), user="u2"),
        ],
    )
    s = await summary(store, t, PRICES)
    assert s.active_subscriptions == {"premium_yearly": 1, "premium_monthly": 1}
    assert s.mrr_cents == {"premium_yearly": 825.0, "premium_monthly": 999.0}
    assert s.total_mrr_cents == 1824.0
    # three started (the trial counts as live), one canceled, the upgrade is neither
    assert (s.today.subscriptions_started, s.today.subscriptions_canceled) == (3, 1)


async def test_a_late_older_subscription_event_does_not_undo_a_newer_one() -> None:
    t = MONDAY
    events: list[Event] = [
        sub("s1", "premium_monthly", "active", t),
        sub("s1", "premium_monthly", "past_due", t + timedelta(days=1)),
        sub("s1", "premium_monthly", "canceled", t + timedelta(days=8)),
    ]
    for order in itertools.permutations(events):
        store = MemoryStore()
        await feed(store, list(order))
        s = await summary(store, t, PRICES)
        assert (s.active_subscriptions, s.mrr_cents) == ({}, {}), order


async def test_replaying_a_state_event_changes_nothing() -> None:
    """The inbox drops redeliveries before the projection; even past it, state events are
    idempotent: the same subscription or streak fact twice leaves the same figures."""
    store = MemoryStore()
    change = sub("s1", "premium_monthly", "active", MONDAY)
    streak = StreakChanged(
        user_id="ana",
        days=4,
        previous_days=3,
        on_day=MONDAY.date(),
        status="extended",
        occurred_at=MONDAY,
    )
    await feed(store, [change, streak, change, streak])
    s = await summary(store, MONDAY, PRICES)
    assert s.active_subscriptions == {"premium_monthly": 1}
    assert s.today.subscriptions_started == 1
    assert (s.streaks.active, s.streaks.longest_days) == (1, 4)


async def test_streaks_masteries_payment_failures_and_deliverability() -> None:
    store = MemoryStore()

    def streak(user: str, days: int, status: str, minutes: int) -> StreakChanged:
        at = MONDAY + timedelta(minutes=minutes)
        return StreakChanged(
            user_id=user,
            days=days,
            previous_days=max(days - 1, 0),
            on_day=at.date(),
            status=status,
            occurred_at=at,
        )

    def sent(channel: str) -> NotificationSent:
        return NotificationSent(
            notification_id="n",
            user_id="u",
            kind="k",
            channel=channel,
            occurred_at=MONDAY,
        )

    await feed(
        store,
        [
            streak("ana", 12, "extended", 0),
            # ben practised on Sunday and is warned on Monday
            streak("ben", 3, "extended", -24 * 60),
            streak("ben", 3, "at_risk", 5),
            # cleo missed days; her take today restarted the streak at 1: running again
            streak("cleo", 9, "extended", 0),
            streak("cleo", 1, "broken", 10),
            MasteryReached(user_id="ana", piece_id="p", threshold=0.9, occurred_at=MONDAY),
            PaymentFailed(
                user_id="ben",
                payment_id="pi",
                amount_cents=999,
                currency="eur",
                reason="card_declined",
                attempt=1,
                occurred_at=MONDAY,
            ),
            sent("email"),
            sent("email"),
            sent("email"),
            NotificationFailed(
                notification_id="n",
                user_id="u",
                kind="k",
                channel="email",
                error="550",
                permanent=True,
                occurred_at=MONDAY,
            ),
            sent("push"),
        ],
    )
    s = await summary(store, MONDAY, PRICES)
    assert (s.streaks.active, s.streaks.at_risk, s.streaks.longest_days) == (3, 1, 12)
    assert (s.today.masteries, s.today.payment_failures) == (1, 1)
    email = s.today.notifications["email"]
    assert (email.sent, email.failed, email.delivery_rate) == (3, 1, 0.75)
    assert s.today.notifications["push"].delivery_rate == 1.0
    assert s.today.notifications["sms"].delivery_rate is None


def registered(user: str, timezone: str) -> UserRegistered:
    return UserRegistered(
        user_id=user,
        email=f"{user}@example.com",
        display_name=user,
        roles=["student"],
        locale="en",
        timezone=timezone,
        occurred_at=MONDAY - timedelta(days=30),
    )


def streak_event(user: str, days: int, status: str, on_day: date, at: datetime) -> StreakChanged:
    return StreakChanged(
        user_id=user,
        days=days,
        previous_days=days if status == "at_risk" else days - 1,
        on_day=on_day,
        status=status,
        occurred_at=at,
    )


async def test_a_streak_nobody_continues_expires_on_the_learners_own_calendar() -> None:
    """db announces a streak's end only when the learner plays again; metrics must let it
    go when the at-risk day passes in the learner's zone (or, unwarned, once no rest days
    could bridge the gap), not keep it running forever."""
    tue = date(2031, 3, 4)
    store = MemoryStore()
    await feed(
        store,
        [
            registered("ana", "UTC"),
            registered("kai", "Pacific/Kiritimati"),  # UTC+14
            registered("lee", "America/Los_Angeles"),  # UTC-8 in March 2031
            registered("nina", "UTC"),
            # each practised Monday (their day), then was warned on Tuesday evening, local
            streak_event("ana", 5, "extended", MONDAY.date(), MONDAY),
            streak_event("ana", 5, "at_risk", tue, datetime(2031, 3, 4, 18, 30, tzinfo=UTC)),
            streak_event("kai", 8, "extended", MONDAY.date(), MONDAY - timedelta(hours=10)),
            streak_event("kai", 8, "at_risk", tue, datetime(2031, 3, 4, 4, 30, tzinfo=UTC)),
            streak_event("lee", 3, "extended", MONDAY.date(), MONDAY + timedelta(hours=8)),
            streak_event("lee", 3, "at_risk", tue, datetime(2031, 3, 5, 2, 30, tzinfo=UTC)),
            # nina was warned, then played that evening: her streak goes on
            streak_event("nina", 2, "at_risk", tue, datetime(2031, 3, 4, 18, 0, tzinfo=UTC)),
            streak_event("nina", 3, "extended", tue, datetime(2031, 3, 4, 20, 0, tzinfo=UTC)),
            # mo is not known to auth's events and was never warned
            streak_event("mo", 4, "extended", MONDAY.date(), MONDAY),
        ],
    )

    async def running(now: datetime) -> tuple[int, int, int]:
        f = (await summary(store, now, PRICES)).streaks
        return f.active, f.at_risk, f.longest_days

    # Tuesday 11:00 UTC: Wednesday already in Kiritimati, so kai's at-risk day has passed
    assert await running(datetime(2031, 3, 4, 11, 0, tzinfo=UTC)) == (4, 2, 5)
    # Tuesday 23:00 UTC: ana and lee still have their Tuesday to play
    assert await running(datetime(2031, 3, 4, 23, 0, tzinfo=UTC)) == (4, 2, 5)
    # Wednesday 06:00 UTC: ana's Tuesday is over; Los Angeles is still on Tuesday evening
    assert await running(datetime(2031, 3, 5, 6, 0, tzinfo=UTC)) == (3, 1, 4)
    # Wednesday 09:00 UTC: Tuesday is over in Los Angeles too
    assert await running(datetime(2031, 3, 5, 9, 0, tzinfo=UTC)) == (2, 0, 4)
    # unwarned, mo's streak may still be bridged by rest days 13 days after his last take
    # (his zone unknown: the latest midnight, UTC-12), never 14 days after
    day_13 = datetime.combine(MONDAY.date() + timedelta(days=14), time(11, 0), UTC)
    assert await running(day_13) == (2, 0, 4)
    assert await running(day_13 + timedelta(hours=2)) == (1, 0, 3)


async def test_a_warning_racing_the_days_first_take_does_not_undo_it() -> None:
    """db's sweep read no take for Tuesday and warned a moment after the take's event was
    stamped; in any arrival order the take stands: Tuesday was practised."""
    tue = date(2031, 3, 4)
    take = streak_event("ana", 6, "extended", tue, datetime(2031, 3, 4, 18, 0, 0, tzinfo=UTC))
    warning = streak_event("ana", 5, "at_risk", tue, datetime(2031, 3, 4, 18, 0, 1, tzinfo=UTC))
    monday = streak_event("ana", 5, "extended", MONDAY.date(), MONDAY)
    for order in itertools.permutations([monday, take, warning]):
        store = MemoryStore()
        await feed(store, [registered("ana", "UTC"), *order])
        wednesday = (await summary(store, datetime(2031, 3, 5, 9, 0, tzinfo=UTC), PRICES)).streaks
        assert (wednesday.active, wednesday.at_risk, wednesday.longest_days) == (1, 0, 6), order


async def test_a_deleted_learner_stays_counted_but_unlinked() -> None:
    store = MemoryStore()
    await feed(
        store,
        [
            scored("ana", MONDAY, 80),
            StreakChanged(
                user_id="ana",
                days=2,
                previous_days=1,
                on_day=MONDAY.date(),
                status="extended",
                occurred_at=MONDAY,
            ),
            UserDeleted(user_id="ana", occurred_at=MONDAY + timedelta(hours=1)),
        ],
    )
    (day,) = await daily(store, MONDAY.date(), MONDAY.date())
    assert (day.active_learners, day.deletions) == (1, 1)
    assert all(user != "ana" for _, user in store.active)
    assert (await summary(store, MONDAY, PRICES)).streaks.active == 0


@pytest.mark.parametrize(
    ("first", "last", "why"),
    [
        (date(2031, 1, 2), date(2031, 1, 1), "before"),
        (date(2030, 1, 1), date(2031, 1, 2), "at most 366 days"),
    ],
)
def test_backwards_or_overlong_ranges_are_refused(first: date, last: date, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_range(first, last)
    check_range(date(2030, 1, 1), date(2030, 12, 31))
    check_range(date(2031, 1, 1), date(2031, 1, 1))
