from datetime import UTC, datetime, timedelta

from sonata_scoring.domain.entitlements import Entitlement, Limits, free_entitlement

FREE = Limits(scored_sessions_per_day=3, coach=False, full_reports=False, teacher_seats=0)
PREMIUM = Limits(scored_sessions_per_day=None, coach=True, full_reports=True, teacher_seats=0)
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def premium(as_of: datetime, version: int, valid_until: datetime | None = None) -> Entitlement:
    return Entitlement("u", "premium_monthly", PREMIUM, valid_until, version, as_of)


def test_newer_as_of_wins_whatever_the_arrival_order() -> None:
    older, newer = premium(T0, 5), premium(T0 + timedelta(seconds=1), 1)
    assert newer.supersedes(older)
    assert not older.supersedes(newer)


def test_version_breaks_ties_on_the_same_instant_and_replays_change_nothing() -> None:
    assert premium(T0, 2).supersedes(premium(T0, 1))
    assert not premium(T0, 1).supersedes(premium(T0, 2))
    assert not premium(T0, 2).supersedes(premium(T0, 2))
    assert premium(T0, 1).supersedes(None)


def test_a_lapsed_paid_plan_falls_back_to_free_limits() -> None:
    plan = premium(T0, 1, valid_until=T0 + timedelta(days=30))
    assert plan.effective(T0 + timedelta(days=29), FREE).limits == PREMIUM
    lapsed = plan.effective(T0 + timedelta(days=30), FREE)
    assert (lapsed.plan, lapsed.limits, lapsed.valid_until) == ("free", FREE, None)


def test_unknown_user_gets_the_free_plan() -> None:
    default = free_entitlement("new-user", FREE, T0)
    assert (default.plan, default.limits, default.version) == ("free", FREE, 0)
