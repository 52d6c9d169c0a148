"""Progress rules: trend, mastery, practice streaks and weekly goals. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

MASTERY_RUN = 3  # consecutive performances at or above the threshold
TREND_WINDOW = 5  # the latest performances the trend is fitted to


def local_day(moment: datetime, timezone: str) -> date:
    """The learner's calendar day at ``moment`` (an aware datetime) in their IANA timezone."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def known_timezone(name: str) -> bool:
    """An IANA zone name this machine can resolve; a folder name such as "America" is not."""
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return False
    return True


def week_of(day: date) -> tuple[int, int]:
    iso = day.isocalendar()
    return iso.year, iso.week


def trend(scores: Sequence[float]) -> float | None:
    """Points gained per performance over the latest ones (least-squares slope); None below 2."""
    window = list(scores[-TREND_WINDOW:])
    n = len(window)
    if n < 2:
        return None
    mean_x = (n - 1) / 2
    mean_y = sum(window) / n
    num = sum((k - mean_x) * (y - mean_y) for k, y in enumerate(window))
    den = sum((k - mean_x) ** 2 for k in range(n))
    return round(num / den, 2)


def is_mastered(scores: Sequence[float], threshold: float) -> bool:
    """Mastered once any run of three consecutive performances reached the threshold."""
    run = 0
    for score in scores:
        run = run + 1 if score >= threshold else 0
        if run >= MASTERY_RUN:
            return True
    return False


def streak(days: Iterable[date], today: date, rest_days_per_week: int) -> int:
    """Practice days in the current streak, counted back from ``today``.

    Today is not over, so not having practised yet breaks nothing. Each ISO week forgives up to
    ``rest_days_per_week`` days without practice; one more missed day in that week ends the
    streak. Rest days bridge the streak but do not lengthen it.
    """
    practised = set(days)
    if not practised:
        return 0
    first = min(practised)
    day = today if today in practised else today - timedelta(days=1)
    count = 0
    rests: dict[tuple[int, int], int] = {}
    while day >= first:
        if day in practised:
            count += 1
        else:
            week = week_of(day)
            if rests.get(week, 0) >= rest_days_per_week:
                break
            rests[week] = rests.get(week, 0) + 1
        day -= timedelta(days=1)
    return count


@dataclass(frozen=True)
class StreakChange:
    days: int
    previous_days: int
    status: str  # "extended" or "broken"


def streak_change(
    earlier_days: Iterable[date], day: date, rest_days_per_week: int
) -> StreakChange | None:
    """What practising on ``day`` does to the streak; None when ``day`` was already practised
    or lies before the latest practice day (a late-arriving record changes no announced streak)."""
    before = set(earlier_days)
    if day in before or (before and day < max(before)):
        return None
    previous = streak(before, max(before), rest_days_per_week) if before else 0
    now = streak(before | {day}, day, rest_days_per_week)
    status = "extended" if now > previous else "broken"
    return StreakChange(days=now, previous_days=previous, status=status)


def week_minutes(sessions: Iterable[tuple[date, float]], week_day: date) -> float:
    """Minutes practised in the ISO week holding ``week_day``; sessions are (local day, seconds)."""
    week = week_of(week_day)
    return round(sum(s for d, s in sessions if week_of(d) == week) / 60.0, 1)


@dataclass(frozen=True)
class PieceStats:
    piece_id: str
    scores: tuple[float, ...]  # oldest first
    section_last: dict[str, float]  # the latest score of each section played


@dataclass(frozen=True)
class Recommendation:
    piece_id: str
    section: str | None
    reason: str


def recommend(
    practised: Sequence[PieceStats], path: Sequence[str], threshold: float
) -> Recommendation | None:
    """Weak sections of unmastered pieces first (most recently practised piece first), then
    an unmastered piece below the threshold, then the next unmastered piece of the path."""
    open_pieces = [p for p in practised if not is_mastered(p.scores, threshold)]
    for stats in open_pieces:
        weak = sorted((score, name) for name, score in stats.section_last.items())
        if weak and weak[0][0] < threshold:
            score, name = weak[0]
            return Recommendation(
                stats.piece_id, name, f"section {name!r} scored {score:.0f} last time"
            )
    for stats in open_pieces:
        if stats.scores and stats.scores[-1] < threshold:
            return Recommendation(
                stats.piece_id, None, f"last score {stats.scores[-1]:.0f}, aim for {threshold:.0f}"
            )
    mastered = {p.piece_id for p in practised if is_mastered(p.scores, threshold)}
    for piece_id in path:
        if piece_id not in mastered:
            return Recommendation(piece_id, None, "the next piece on your skill path")
    return None


def streak_at_risk(days: Iterable[date], today: date, rest_days_per_week: int) -> int | None:
    """The streak's length when it is cut unless the learner practises on ``today``; None when
    today is already practised, there is no streak, or a rest day would bridge a missed today."""
    practised = set(days)
    if today in practised:
        return None
    current = streak(practised, today, rest_days_per_week)
    if current == 0:
        return None
    # Missing today either spends a rest day (the streak carries on whole) or cuts it short.
    if streak(practised, today + timedelta(days=1), rest_days_per_week) == current:
        return None
    return current
