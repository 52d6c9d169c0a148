"""metrics as a real process fed over real RabbitMQ: every domain event is counted once per
UTC day and folded into the business KPIs, readable by staff over REST and by Prometheus."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sonata_contracts import Event
from sonata_contracts.ai_scoring import PerformanceScored, SessionStarted
from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_contracts.db import MasteryReached, StreakChanged
from sonata_contracts.notifications import NotificationFailed, NotificationSent
from sonata_contracts.payment import CreditsChanged, PaymentFailed, SubscriptionChanged
from sonata_testing import (
    JwksServer,
    ServiceProcess,
    SigningKey,
    TokenFactory,
    eventually,
    publish_events,
)

pytestmark = pytest.mark.integration

KEY = SigningKey()
TOKENS = TokenFactory(KEY)
ADMIN = {"Authorization": f"Bearer {TOKENS.sign(TOKENS.claims('ops', roles=('admin',)))}"}
# A day far from today so events of other tests in this run never land in it.
DAY = datetime(2031, 7, 4, 20, 0, tzinfo=UTC)
# Plans of this test only, so subscriptions other suites publish cannot move its figures.
PRICES = {
    "t_monthly": {"amount_cents": 1000, "interval": "month"},
    "t_yearly": {"amount_cents": 12000, "interval": "year"},
}


@pytest.fixture(scope="module")
def metrics(mongo_url: str, amqp_url: str, tmp_path_factory: Any) -> Iterator[ServiceProcess]:
    with JwksServer([KEY.jwk]) as jwks:
        env = {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": f"metrics_{uuid.uuid4().hex[:8]}",
            "AMQP_URL": amqp_url,
            "AUTH_JWKS_URL": jwks.url,
            "PLAN_PRICES": json.dumps(PRICES),
            "KPI_REFRESH_INTERVAL_S": "0.5",
        }
        service = ServiceProcess(
            "metrics",
            "sonata_metrics.main:create_app",
            env,
            log_dir=tmp_path_factory.mktemp("metrics"),
        )
        service.start()
        try:
            yield service
        finally:
            service.stop()


def scored(user: str, at: datetime, score: float, duration_s: float) -> PerformanceScored:
    return PerformanceScored(
        performance_id=uuid.uuid4().hex,
        session_id=uuid.uuid4().hex,
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


def subscription(sub_id: str, plan: str, status: str) -> SubscriptionChanged:
    return SubscriptionChanged(
        user_id=f"user-{sub_id}",
        subscription_id=sub_id,
        plan=plan,
        status=status,
        cancel_at_period_end=False,
        current_period_end=None,
    )


async def test_events_become_daily_kpis_once_even_when_delivered_twice(
    metrics: ServiceProcess, amqp_url: str
) -> None:
    ana_scored = scored("ana", DAY + timedelta(minutes=10), 80, 600)
    events: list[Event] = [
        *(
            UserRegistered(
                user_id=f"new{i}",
                email=f"n{i}@example.com",
                display_name="N",
                roles=["student"],
                locale="en",
                timezone="UTC",
                occurred_at=DAY,
            )
            for i in range(2)
        ),
        SessionStarted(
            session_id="s1",
            user_id="ana",
            piece_id="p",
            piece_version=1,
            started_at=DAY,
            occurred_at=DAY,
        ),
        ana_scored,
        scored("ana", DAY + timedelta(hours=1), 90, 300),
        MasteryReached(user_id="ana", piece_id="p", threshold=0.9, occurred_at=DAY),
        PaymentFailed(
            user_id="ben",
            payment_id="pi_1",
            amount_cents=1000,
            currency="eur",
            reason="card_declined",
            attempt=1,
            occurred_at=DAY,
        ),
        *(
            NotificationSent(
                notification_id=f"n{i}",
                user_id="ana",
                kind="welcome",
                channel="email",
                occurred_at=DAY,
            )
            for i in range(3)
        ),
        NotificationFailed(
            notification_id="n9",
            user_id="ben",
            kind="welcome",
            channel="email",
            error="550 no such user",
            permanent=True,
            occurred_at=DAY,
        ),
        CreditsChanged(
            user_id="ana", delta=-1, balance=4, reason="spend", entry_id="e1", occurred_at=DAY
        ),
        UserDeleted(user_id="gone", occurred_at=DAY),
        # two days later ben practises: the week ending then holds ana and ben
        scored("ben", DAY + timedelta(days=2), 70, 120),
    ]
    # the first performance arrives twice: counted once
    await publish_events(amqp_url, [*events[:4], ana_scored, *events[4:]])

    async with httpx.AsyncClient(base_url=metrics.base_url, headers=ADMIN) as http:

        async def last_one_applied() -> bool:
            r = await http.get("/v1/kpis/daily", params={"from": "2031-07-06", "to": "2031-07-06"})
            return r.status_code == 200 and r.json()["days"][0]["performances"] == 1

        await eventually(last_one_applied, "the events to be projected")
        r = await http.get("/v1/kpis/daily", params={"from": "2031-07-04", "to": "2031-07-06"})
        assert r.status_code == 200, r.text
        day, quiet, later = r.json()["days"]
        assert day == {
            "day": "2031-07-04",
            "active_learners": 1,
            "weekly_active_learners": 1,
            "signups": 2,
            "deletions": 1,
            "sessions_started": 1,
            "performances": 2,
            "minutes_practised": 15.0,
            "average_score": 85.0,
            "masteries": 1,
            "achievements": 0,
            "payments_succeeded": 0,
            "payment_failures": 1,
            "subscriptions_started": 0,
            "subscriptions_canceled": 0,
            "notifications": {
                "email": {"sent": 3, "failed": 1, "delivery_rate": 0.75},
                "sms": {"sent": 0, "failed": 0, "delivery_rate": None},
                "push": {"sent": 0, "failed": 0, "delivery_rate": None},
            },
        }
        assert (quiet["active_learners"], quiet["weekly_active_learners"]) == (0, 1)
        assert (later["active_learners"], later["weekly_active_learners"]) == (1, 2)
        assert later["average_score"] == 70.0

        counts = await http.get("/v1/rollups/daily/2031-07-04")
        assert counts.status_code == 200
        assert counts.json()["events"][PerformanceScored.NAME] == 2
        assert counts.json()["events"][CreditsChanged.NAME] == 1


async def test_subscriptions_give_mrr_by_plan_over_rest_and_prometheus(
    metrics: ServiceProcess, amqp_url: str
) -> None:
    first = subscription("sub_a", "t_monthly", "active")
    await publish_events(
        amqp_url,
        [
            subscription("sub_c", "t_monthly", "active"),
            subscription("sub_c", "t_monthly", "canceled"),
            first,
            subscription("sub_b", "t_yearly", "active"),
            first,  # redelivered
        ],
    )
    async with httpx.AsyncClient(base_url=metrics.base_url, headers=ADMIN) as http:

        async def yearly_applied() -> bool:
            body = (await http.get("/v1/kpis/summary")).json()
            return "t_yearly" in body["active_subscriptions"]

        await eventually(yearly_applied, "the subscriptions to be projected")
        body = (await http.get("/v1/kpis/summary")).json()
        assert {p: n for p, n in body["active_subscriptions"].items() if p.startswith("t_")} == {
            "t_monthly": 1,
            "t_yearly": 1,
        }
        # a yearly plan is a twelfth of its price a month
        assert {p: c for p, c in body["mrr_cents"].items() if p.startswith("t_")} == {
            "t_monthly": 1000.0,
            "t_yearly": 1000.0,
        }
        assert body["today"]["day"] == datetime.now(UTC).date().isoformat()

        async def gauges_refreshed() -> bool:
            exposed = (await http.get("/metrics")).text
            return (
                'sonata_kpi_mrr_cents{plan="t_monthly"} 1000.0' in exposed
                and 'sonata_kpi_active_subscriptions{plan="t_yearly"} 1.0' in exposed
            )

        await eventually(gauges_refreshed, "the KPI gauges to show the subscriptions")

    # the gauges come from the database: a restarted process shows the same figures at once,
    # with no new event
    metrics.stop()
    metrics.start()
    async with httpx.AsyncClient(base_url=metrics.base_url) as http:
        await eventually(gauges_refreshed, "the restarted process to show the same figures")


def learner(user: str, timezone: str) -> UserRegistered:
    return UserRegistered(
        user_id=user,
        email=f"{user}@example.com",
        display_name=user,
        roles=["student"],
        locale="en",
        timezone=timezone,
    )


def warned(user: str, days: int, on_day: date) -> StreakChanged:
    return StreakChanged(
        user_id=user, days=days, previous_days=days, on_day=on_day, status="at_risk"
    )


async def test_a_streak_whose_warned_day_passed_in_the_learners_zone_is_not_running(
    metrics: ServiceProcess, amqp_url: str
) -> None:
    """Two learners warned that their streak ends unless they play on the named local day:
    that day is over in Kiritimati (UTC+14), and still today in Pago Pago (UTC-11)."""
    now = datetime.now(UTC)
    kai_yesterday = now.astimezone(ZoneInfo("Pacific/Kiritimati")).date() - timedelta(days=1)
    pago_today = now.astimezone(ZoneInfo("Pacific/Pago_Pago")).date()
    await publish_events(
        amqp_url,
        [
            learner("kai", "Pacific/Kiritimati"),
            learner("pua", "Pacific/Pago_Pago"),
            warned("kai", 30, kai_yesterday),
            warned("pua", 6, pago_today),
        ],
    )
    async with httpx.AsyncClient(base_url=metrics.base_url, headers=ADMIN) as http:

        async def pua_counted() -> bool:
            body = (await http.get("/v1/kpis/summary")).json()
            return bool(body["streaks"]["at_risk"])

        await eventually(pua_counted, "the streaks to be projected")
        body = (await http.get("/v1/kpis/summary")).json()
        assert body["streaks"] == {"active": 1, "at_risk": 1, "longest_days": 6}

        async def gauges_show_it() -> bool:
            exposed = (await http.get("/metrics")).text
            return (
                'sonata_kpi_streaks{state="active"} 1.0' in exposed
                and "sonata_kpi_longest_streak_days 6.0" in exposed
            )

        await eventually(gauges_show_it, "the streak gauges to leave the ended streak out")


async def test_only_staff_read_the_figures_and_bad_ranges_get_422(
    metrics: ServiceProcess,
) -> None:
    student = {"Authorization": f"Bearer {TOKENS.sign(TOKENS.claims('ana'))}"}
    async with httpx.AsyncClient(base_url=metrics.base_url) as http:
        for path in ("/v1/kpis/summary", "/v1/rollups/daily/2031-07-04"):
            assert (await http.get(path)).status_code == 401
            denied = await http.get(path, headers=student)
            assert denied.status_code == 403
            assert denied.json()["error"] == "forbidden"
        assert (await http.get("/metrics")).status_code == 200  # Prometheus needs no token

        for params, error in [
            ({"from": "2031-07-05", "to": "2031-07-04"}, "bad_range"),
            ({"from": "2030-01-01", "to": "2031-07-04"}, "bad_range"),
            ({"from": "2031-13-40", "to": "2031-07-04"}, "validation_error"),
            ({"from": "2031-07-04"}, "validation_error"),
        ]:
            r = await http.get("/v1/kpis/daily", params=params, headers=ADMIN)
            assert r.status_code == 422, (params, r.text)
            assert r.json()["error"] == error
        bad_day = await http.get("/v1/rollups/daily/2031-13-40", headers=ADMIN)
        assert bad_day.status_code == 422
