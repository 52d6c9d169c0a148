"""The business KPIs as Prometheus figures, recomputed from the database (a restart does not
reset them) every few seconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from prometheus_client import Gauge
from pymongo.errors import PyMongoError

from sonata_metrics.domain.kpis import CHANNELS, PlanPrice
from sonata_metrics.service_layer.ports import KpiReader
from sonata_metrics.service_layer.queries import Summary, summary

log = logging.getLogger("sonata.metrics.gauges")

ACTIVE_LEARNERS = Gauge(
    "sonata_kpi_active_learners",
    "Distinct learners who practised: today (window=day) or in the 7 days to today (week).",
    ["window"],
)
TODAY = Gauge(
    "sonata_kpi_today",
    "Counts of the current UTC day, by figure (signups, performances, masteries...).",
    ["figure"],
)
PRACTICE_MINUTES = Gauge(
    "sonata_kpi_practice_minutes_today", "Minutes of scored performances today (UTC)."
)
AVERAGE_SCORE = Gauge(
    "sonata_kpi_average_score_today", "Mean overall score of today's performances (0 if none)."
)
NOTIFICATIONS = Gauge(
    "sonata_kpi_notifications_today",
    "Notifications sent or failed today, by channel and outcome.",
    ["channel", "outcome"],
)
SUBSCRIPTIONS = Gauge(
    "sonata_kpi_active_subscriptions", "Live subscriptions (trialing, active, past due).", ["plan"]
)
MRR = Gauge(
    "sonata_kpi_mrr_cents",
    "Monthly recurring revenue in cents by plan (a yearly plan counts a twelfth).",
    ["plan"],
)
STREAKS = Gauge("sonata_kpi_streaks", "Learners with a running streak, by state.", ["state"])
LONGEST_STREAK = Gauge("sonata_kpi_longest_streak_days", "The longest running streak, in days.")

COUNT_FIGURES = (
    "signups",
    "deletions",
    "sessions_started",
    "performances",
    "masteries",
    "achievements",
    "payments_succeeded",
    "payment_failures",
    "subscriptions_started",
    "subscriptions_canceled",
)


def publish(s: Summary) -> None:
    t = s.today
    ACTIVE_LEARNERS.labels("day").set(t.active_learners)
    ACTIVE_LEARNERS.labels("week").set(t.weekly_active_learners)
    for figure in COUNT_FIGURES:
        TODAY.labels(figure).set(getattr(t, figure))
    PRACTICE_MINUTES.set(t.minutes_practised)
    AVERAGE_SCORE.set(t.average_score or 0.0)
    for channel in CHANNELS:
        figures = t.notifications[channel]
        NOTIFICATIONS.labels(channel, "sent").set(figures.sent)
        NOTIFICATIONS.labels(channel, "failed").set(figures.failed)
    # A plan nobody holds any more drops to 0 rather than keeping its last value.
    for plan in set(s.active_subscriptions) | _labels(SUBSCRIPTIONS):
        SUBSCRIPTIONS.labels(plan).set(s.active_subscriptions.get(plan, 0))
    for plan in set(s.mrr_cents) | _labels(MRR):
        MRR.labels(plan).set(s.mrr_cents.get(plan, 0.0))
    STREAKS.labels("active").set(s.streaks.active)
    STREAKS.labels("at_risk").set(s.streaks.at_risk)
    LONGEST_STREAK.set(s.streaks.longest_days)


def _labels(gauge: Gauge) -> set[str]:
    return {
        sample.labels["plan"]
        for metric in gauge.collect()
        for sample in metric.samples
        if "plan" in sample.labels
    }


def utc_now() -> datetime:
    return datetime.now(UTC)


async def refresh_forever(
    reader: KpiReader,
    prices: Mapping[str, PlanPrice],
    interval_s: float,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    while True:
        try:
            publish(await summary(reader, clock(), prices))
        except PyMongoError as exc:
            log.warning("cannot refresh the KPI gauges: %s", exc)
        except Exception:
            log.exception("refreshing the KPI gauges failed")
        await asyncio.sleep(interval_s)
