"""What the KPI API and the Prometheus gauges read: daily rollups and today's summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sonata_metrics.domain.kpis import (
    DayRollup,
    PlanPrice,
    StreakFigures,
    active_by_plan,
    check_range,
    learners_by_day,
    mrr_by_plan,
    rollup,
    streak_figures,
    week_of,
    weekly_active,
)
from sonata_metrics.service_layer.ports import KpiReader


async def daily(reader: KpiReader, first: date, last: date) -> list[DayRollup]:
    """One rollup per day of ``first..last`` (days without events are zeros)."""
    check_range(first, last)
    counts = await reader.counts(first, last)
    by_day = learners_by_day(await reader.learner_days(week_of(first)[0], last))
    days = [date.fromordinal(d) for d in range(first.toordinal(), last.toordinal() + 1)]
    return [
        rollup(day, counts.get(day, {}), len(by_day.get(day, ())), weekly_active(by_day, day))
        for day in days
    ]


@dataclass(frozen=True)
class Summary:
    today: DayRollup
    active_subscriptions: dict[str, int]
    mrr_cents: dict[str, float]
    streaks: StreakFigures

    @property
    def total_mrr_cents(self) -> float:
        return round(sum(self.mrr_cents.values()), 2)


async def summary(reader: KpiReader, now: datetime, prices: Mapping[str, PlanPrice]) -> Summary:
    """The figures at ``now``: its UTC day's rollup, and streaks on each learner's own day."""
    today = now.astimezone(UTC).date()
    (day,) = await daily(reader, today, today)
    subscriptions = await reader.subscriptions()
    streaks = await reader.streaks()
    zones = await reader.timezones([s.user_id for s in streaks])
    return Summary(
        today=day,
        active_subscriptions=active_by_plan(subscriptions),
        mrr_cents=mrr_by_plan(subscriptions, prices),
        streaks=streak_figures(streaks, now, zones),
    )
