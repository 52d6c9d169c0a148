"""db's view of a user's plan: the newest decision wins, a lapsed plan is the free one."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sonata_db.domain.plan import Entitlement, PlanLimits, effective_limits, seats_left

FREE = PlanLimits(full_reports=False, teacher_seats=0)
TEACHER = PlanLimits(full_reports=True, teacher_seats=5)
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def decision(
    version: int, at: datetime, limits: PlanLimits, until: datetime | None = None
) -> Entitlement:
    plan = "free" if limits == FREE else "teacher"
    return Entitlement("u1", plan, limits, until, version, at)


def newest_of(events: tuple[Entitlement, ...]) -> Entitlement | None:
    current: Entitlement | None = None
    for event in events:
        if event.supersedes(current):
            current = event
    return current


def test_every_arrival_order_ends_on_the_latest_decision() -> None:
    bought = decision(1, T0, TEACHER)
    cancelled = decision(2, T0 + timedelta(days=30), FREE)
    resumed = decision(3, T0 + timedelta(days=31), TEACHER)
    for order in itertools.permutations([bought, cancelled, resumed]):
        assert newest_of(order) == resumed


def test_same_instant_is_decided_by_version() -> None:
    first, second = decision(4, T0, TEACHER), decision(5, T0, FREE)
    assert newest_of((second, first)) == second
    assert not first.supersedes(first)  # a replay changes nothing


def test_unknown_user_and_lapsed_plan_have_the_free_limits() -> None:
    assert effective_limits(None, T0, FREE) == FREE
    paid = decision(1, T0, TEACHER, until=T0 + timedelta(days=30))
    assert effective_limits(paid, T0 + timedelta(days=29), FREE) == TEACHER
    assert effective_limits(paid, T0 + timedelta(days=30), FREE) == FREE


def test_seats_left_never_goes_below_zero() -> None:
    assert seats_left(TEACHER, 3) == 2
    assert seats_left(TEACHER, 5) == 0
    assert seats_left(FREE, 2) == 0
