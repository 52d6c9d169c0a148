"""Streaks in the learner's own days, mastery runs, trends and what to practise next."""

from datetime import UTC, date, datetime, timedelta

from sonata_db.domain.progress import (
    PieceStats,
    is_mastered,
    known_timezone,
    local_day,
    recommend,
    streak,
    streak_change,
    trend,
    week_minutes,
)


def days(*isos: str) -> set[date]:
    return {date.fromisoformat(d) for d in isos}


def test_the_same_instant_is_a_different_day_in_auckland_and_los_angeles() -> None:
    moment = datetime(2026, 3, 10, 20, 30, tzinfo=UTC)
    assert local_day(moment, "Pacific/Auckland") == date(2026, 3, 11)
    assert local_day(moment, "America/Los_Angeles") == date(2026, 3, 10)
    assert local_day(moment, "UTC") == date(2026, 3, 10)


def test_days_across_the_spring_dst_change_stay_consecutive() -> None:
    # Los Angeles moves its clocks at 02:00 on 2026-03-08. Practising at 00:30 local each
    # night is 08:30 UTC before the change and 07:30 UTC after it.
    nights = [
        datetime(2026, 3, 7, 8, 30, tzinfo=UTC),
        datetime(2026, 3, 8, 8, 30, tzinfo=UTC),
        datetime(2026, 3, 9, 7, 30, tzinfo=UTC),
        datetime(2026, 3, 10, 7, 30, tzinfo=UTC),
    ]
    local = [local_day(n, "America/Los_Angeles") for n in nights]
    assert local == [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)]
    assert streak(local, date(2026, 3, 10), rest_days_per_week=0) == 4
    # The winter offset kept past the change would file the 03-09 night under 03-08.
    fixed = [(n - timedelta(hours=8)).date() for n in nights]
    assert fixed[2] == date(2026, 3, 8)


def test_autumn_dst_change_in_europe_keeps_the_late_evening_on_its_day() -> None:
    # Paris leaves summer time on 2026-10-25: 23:30 local is 21:30 UTC, then 22:30 UTC.
    before = datetime(2026, 10, 24, 21, 30, tzinfo=UTC)
    after = datetime(2026, 10, 25, 22, 30, tzinfo=UTC)
    assert local_day(before, "Europe/Paris") == date(2026, 10, 24)
    assert local_day(after, "Europe/Paris") == date(2026, 10, 25)


def test_a_missed_day_breaks_the_streak_without_rest_days() -> None:
    practised = days("2026-05-04", "2026-05-05", "2026-05-07", "2026-05-08")
    assert streak(practised, date(2026, 5, 8), rest_days_per_week=0) == 2


def test_a_weekly_rest_day_bridges_one_gap_per_week_but_not_two() -> None:
    practised = days("2026-05-04", "2026-05-05", "2026-05-07", "2026-05-08")
    assert streak(practised, date(2026, 5, 8), rest_days_per_week=1) == 4
    two_gaps = days("2026-05-04", "2026-05-06", "2026-05-08")  # one ISO week, two gaps
    assert streak(two_gaps, date(2026, 5, 8), rest_days_per_week=1) == 2
    assert streak(two_gaps, date(2026, 5, 8), rest_days_per_week=2) == 3


def test_rest_allowance_renews_each_iso_week() -> None:
    # Gaps on Sunday 2026-05-10 (week 19) and Wednesday 2026-05-13 (week 20).
    practised = days("2026-05-09", "2026-05-11", "2026-05-12", "2026-05-14")
    assert streak(practised, date(2026, 5, 14), rest_days_per_week=1) == 4


def test_today_not_yet_practised_does_not_break_yesterdays_streak() -> None:
    practised = days("2026-05-06", "2026-05-07")
    assert streak(practised, date(2026, 5, 8), rest_days_per_week=0) == 2
    assert streak(practised, date(2026, 5, 9), rest_days_per_week=0) == 0
    assert streak(set(), date(2026, 5, 9), rest_days_per_week=1) == 0


def test_streak_change_says_extended_or_broken_once_per_day() -> None:
    earlier = days("2026-05-06", "2026-05-07")
    extended = streak_change(earlier, date(2026, 5, 8), 0)
    assert extended is not None
    assert (extended.days, extended.previous_days, extended.status) == (3, 2, "extended")
    broken = streak_change(earlier, date(2026, 5, 10), 0)
    assert broken is not None
    assert (broken.days, broken.previous_days, broken.status) == (1, 2, "broken")
    assert streak_change(earlier, date(2026, 5, 7), 0) is None  # a second take that day
    assert streak_change(earlier, date(2026, 5, 1), 0) is None  # a late, older record
    first = streak_change(set(), date(2026, 5, 1), 0)
    assert first is not None
    assert (first.days, first.status) == (1, "extended")


def test_mastery_needs_three_consecutive_scores_at_the_threshold() -> None:
    assert not is_mastered([85, 90], 80)
    assert not is_mastered([85, 79.9, 90, 95], 80)
    assert is_mastered([85, 79.9, 80, 90, 95], 80)
    assert is_mastered([80, 80, 80], 80)
    assert not is_mastered([95, 95, 95], 96)


def test_trend_is_the_slope_over_the_latest_five() -> None:
    assert trend([70]) is None
    assert trend([60, 70]) == 10.0
    assert trend([10, 90, 60, 62, 64, 66, 68]) == 2.0  # the early outliers are out of window
    assert trend([80, 70, 60]) == -10.0


def test_week_minutes_count_only_the_iso_week_of_the_day() -> None:
    sessions = [(date(2026, 5, 4), 600.0), (date(2026, 5, 10), 300.0), (date(2026, 5, 11), 60.0)]
    assert week_minutes(sessions, date(2026, 5, 6)) == 15.0
    assert week_minutes(sessions, date(2026, 5, 11)) == 1.0


def test_recommendation_weak_section_first_then_the_path() -> None:
    path = ["scale", "twinkle", "ode"]
    weak = PieceStats("twinkle", (70.0, 75.0), {"verse": 92.0, "bridge": 55.0})
    assert recommend([weak], path, 80) is not None
    rec = recommend([weak], path, 80)
    assert rec is not None
    assert (rec.piece_id, rec.section) == ("twinkle", "bridge")
    mastered = PieceStats("scale", (85.0, 90.0, 95.0), {"ascending": 60.0})
    rec = recommend([mastered], path, 80)
    assert rec is not None
    assert (rec.piece_id, rec.section) == ("twinkle", None)
    low = PieceStats("ode", (50.0,), {})
    rec = recommend([low, mastered], path, 80)
    assert rec is not None
    assert (rec.piece_id, rec.section) == ("ode", None)
    everything = [PieceStats(p, (90.0, 90.0, 90.0), {}) for p in path]
    assert recommend(everything, path, 80) is None


def test_only_resolvable_zone_names_are_known() -> None:
    assert known_timezone("Pacific/Auckland")
    for name in ("America", "Mars/Olympus", "../etc/passwd", "", "UTC\x00"):
        assert not known_timezone(name), name
