"""The business figures over REST, for staff (role `admin`); /metrics stays open."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sonata_kit import Principal, Unprocessable, require_roles

from sonata_metrics.adapters.gauges import utc_now
from sonata_metrics.adapters.rollups import counts_for
from sonata_metrics.adapters.store import MongoKpiReader
from sonata_metrics.domain.kpis import DayRollup
from sonata_metrics.service_layer import queries
from sonata_metrics.settings import MetricsSettings

Staff = Annotated[Principal, Depends(require_roles("admin"))]
ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "no or invalid access token"},
    403: {"description": "the token lacks the admin role"},
    422: {"description": "bad date or range"},
}
router = APIRouter(prefix="/v1", tags=["kpis"], responses=ERRORS)


class DailyCounts(BaseModel):
    day: date
    events: dict[str, int]


class ChannelOut(BaseModel):
    sent: int
    failed: int
    delivery_rate: float | None


class DayOut(BaseModel):
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
    notifications: dict[str, ChannelOut]

    @classmethod
    def of(cls, d: DayRollup) -> DayOut:
        return cls(
            **{k: getattr(d, k) for k in cls.model_fields if k != "notifications"},
            notifications={
                c: ChannelOut(sent=f.sent, failed=f.failed, delivery_rate=f.delivery_rate)
                for c, f in d.notifications.items()
            },
        )


class DailyOut(BaseModel):
    days: list[DayOut]


class StreaksOut(BaseModel):
    active: int
    at_risk: int
    longest_days: int


class SummaryOut(BaseModel):
    today: DayOut
    active_subscriptions: dict[str, int]
    mrr_cents: dict[str, float]
    total_mrr_cents: float
    streaks: StreaksOut


@router.get("/rollups/daily/{day}", tags=["rollups"])
async def daily_counts(day: date, _: Staff) -> DailyCounts:
    """Event counts per name for one UTC day."""
    return DailyCounts(day=day, events=await counts_for(day.isoformat()))


@router.get("/kpis/daily")
async def daily_kpis(
    _: Staff,
    first: Annotated[date, Query(alias="from", description="first UTC day, YYYY-MM-DD")],
    last: Annotated[date, Query(alias="to", description="last UTC day, included")],
) -> DailyOut:
    """One rollup per UTC day of the range (at most 366 days; 422 `bad_range` otherwise)."""
    try:
        days = await queries.daily(MongoKpiReader(), first, last)
    except ValueError as exc:
        raise Unprocessable(str(exc), code="bad_range") from None
    return DailyOut(days=[DayOut.of(d) for d in days])


@router.get("/kpis/summary")
async def kpi_summary(_: Staff, request: Request) -> SummaryOut:
    """Today (UTC): active learners (day and week), today's counts, live subscriptions and
    MRR by plan, running streaks."""
    settings: MetricsSettings = request.app.state.settings
    s = await queries.summary(MongoKpiReader(), utc_now(), settings.plan_prices)
    return SummaryOut(
        today=DayOut.of(s.today),
        active_subscriptions=s.active_subscriptions,
        mrr_cents=s.mrr_cents,
        total_mrr_cents=s.total_mrr_cents,
        streaks=StreaksOut(**vars(s.streaks)),
    )
