"""When a streak is at risk: it ends at midnight unless the learner practises today."""

from __future__ import annotations

from datetime import date, timedelta

from sonata_db.domain.progress import streak_at_risk

WED = date(2026, 3, 4)  # ISO week 10


def days_before(today: date, *back: int) -> list[date]:
    return [today - timedelta(days=n) for n in back]


def test_a_streak_through_yesterday_is_at_risk_today_without_rest_days() -> None:
    assert streak_at_risk(days_before(WED, 1, 2, 3), WED, rest_days_per_week=0) == 3


def test_today_already_practised_is_not_at_risk() -> None:
    assert streak_at_risk(days_before(WED, 0, 1, 2), WED, rest_days_per_week=0) is None


def test_no_streak_means_nothing_to_lose() -> None:
    assert streak_at_risk([], WED, rest_days_per_week=0) is None
    assert streak_at_risk(days_before(WED, 3), WED, rest_days_per_week=0) is None


def test_an_unused_rest_day_bridges_today() -> None:
    assert streak_at_risk(days_before(WED, 1, 2), WED, rest_days_per_week=1) is None


def test_a_rest_day_used_this_week_leaves_today_at_risk() -> None:
    # Monday was this week's rest day; missing Wednesday too would end the streak.
    assert streak_at_risk(days_before(WED, 1, 3, 4), WED, rest_days_per_week=1) == 3
