"""Every Grafana panel's query, run against a real Prometheus scraping the real fleet.

The fleet starts as `make run` starts it (free ports, the test's own SecantusDB and vhost,
an SMTP sink for notifications); a short scripted load makes requests, a verified signup and
login, a live WebSocket session that is scored, coach questions, Stripe webhooks (forged,
signed, replayed), subscription and payment events as payment publishes them, and a
dead-lettered message; then each panel must be valid PromQL that returns data.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sonata_contracts.db import PiecePublished
from sonata_contracts.payment import (
    EntitlementsChanged,
    Limits,
    PaymentFailed,
    SubscriptionChanged,
)
from sonata_engine import load_score, score_to_dict
from sonata_testing import free_port, publish_events
from sonata_testing.smtp_sink import SmtpSink
from sonata_testing.stripe_wire import sign

sys.path.insert(0, str(Path(__file__).parent))
from observability_support import (
    ROOT,
    Prometheus,
    closed_websocket,
    find_or_install,
    publish_malformed,
    take,
)

sys.path.insert(0, str(ROOT / "tests" / "fleet"))
from auth_fleet_support import EventTap, login, signup_verified
from local_fleet import local_fleet
from scoring_fleet_support import play_session
from sonata_local.plan import SERVICES, Config

pytestmark = pytest.mark.fleet

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
PANEL_DATA_WITHIN = 45.0
# The fleet's own metrics and Prometheus' `up`, with their label matchers.
SELECTOR = re.compile(r"\b(sonata_\w+|up)\b(\{[^}]*\})?")
PADDING = re.compile(r"\bor\b|\bvector\(")
PIECE = ROOT.parent / "shared" / "eval" / "vienna4x22" / "musicxml" / "Schubert_D783_no15.musicxml"
WEBHOOK_SECRET = "dev-stripe-webhook-secret"  # payment's development default


def _panels(path: Path) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(path.read_text())["panels"]
    return panels


def _binary(name: str) -> str:
    try:
        return find_or_install(name)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    # The services inherit this environment (the plan sets only what it owns).
    with SmtpSink() as smtp, pytest.MonkeyPatch.context() as env:
        env.setenv("SMTP_PORT", str(smtp.port))
        env.setenv("KPI_REFRESH_INTERVAL_S", "1")
        with local_fleet(tmp_path_factory.mktemp("obs-fleet-var"), "sonata-obs") as cfg:
            yield cfg


@pytest.fixture(scope="module")
def prometheus(fleet: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    targets = {s.name: f"{fleet.host}:{fleet.ports[s.name]}" for s in SERVICES}
    workdir = tmp_path_factory.mktemp("obs-prometheus")
    with Prometheus(_binary("prometheus"), workdir, free_port(), targets) as prom:
        yield prom


def _signed_webhook(event_type: str) -> tuple[bytes, dict[str, str]]:
    event = {
        "id": f"evt_obs_{uuid.uuid4().hex[:12]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": {"id": f"cus_obs_{uuid.uuid4().hex[:8]}", "object": "customer"}},
    }
    payload = json.dumps(event)
    return payload.encode(), {
        "Stripe-Signature": sign(payload, WEBHOOK_SECRET, int(time.time())),
        "Content-Type": "application/json",
    }


async def _learner_plays_and_asks_the_coach(
    fleet: Config, seen: list[tuple[int, str]]
) -> dict[str, Any]:
    """A verified learner on a paid plan plays a live session, then asks the coach."""
    by_name = {s.name: s for s in SERVICES}
    auth = fleet.direct_url(by_name["auth"])
    scoring = fleet.direct_url(by_name["ai-scoring"])
    email = f"obs-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(timeout=15) as http, EventTap(fleet.amqp_url) as tap:
        await signup_verified(http, tap, auth, email)
        seen.append((202, "auth POST /v1/signup"))
        token = str((await login(http, auth, email))["access_token"])
        user = await http.get(f"{auth}/v1/me", headers={"Authorization": f"Bearer {token}"})
        seen.append((user.status_code, "auth GET /v1/me"))
        user_id = str(user.json()["id"])
    now = datetime.now(UTC)
    piece_id = f"obs-{uuid.uuid4().hex[:6]}"
    score = score_to_dict(load_score(PIECE))
    await publish_events(
        fleet.amqp_url,
        [
            # the plan first: once ai-scoring knows the piece, it knows the plan too
            EntitlementsChanged(
                user_id=user_id, plan="premium_monthly",
                limits=Limits(
                    scored_sessions_per_day=None, coach=True, full_reports=True, teacher_seats=0
                ),
                valid_until=now + timedelta(days=30), version=1, as_of=now,
            ),
            PiecePublished(
                piece_id=piece_id, version=1, title="Valses sentimentales no. 15",
                composer="Schubert", level=4, owner_id=None, visibility="public", score=score,
            ),
            # what payment publishes for a subscription and a failed renewal elsewhere
            SubscriptionChanged(
                user_id=user_id, subscription_id=f"sub_obs_{uuid.uuid4().hex[:8]}",
                plan="premium_monthly", status="active", cancel_at_period_end=False,
                current_period_end=now + timedelta(days=30),
            ),
            PaymentFailed(
                user_id=f"obs-other-{uuid.uuid4().hex[:6]}", payment_id="pi_obs",
                amount_cents=999, currency="eur", reason="card_declined", attempt=1,
            ),
        ],
    )  # fmt: skip
    ws = f"ws://{fleet.host}:{fleet.ports['ai-scoring']}/ws/v1/sessions"
    finished: dict[str, Any] = await play_session(
        ws, token, piece_id, take(score, 40), batch=16, wait_for_piece_s=30
    )
    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30, headers=bearer) as http:
        feedback = await http.get(f"{scoring}/v1/performances/{finished['performance_id']}/coach")
        seen.append((feedback.status_code, "ai-scoring GET /v1/performances/{id}/coach"))
        chat = await http.post(f"{scoring}/v1/coach/chat", json={"message": "what next?"})
        seen.append((chat.status_code, "ai-scoring POST /v1/coach/chat"))
    return finished


@pytest.fixture(scope="module")
def load(fleet: Config, prometheus: Prometheus) -> list[tuple[int, str]]:
    """The scripted load; returns every HTTP status it saw with what was asked."""
    seen: list[tuple[int, str]] = []
    by_name = {s.name: s for s in SERVICES}
    with httpx.Client(timeout=10) as client:
        for s in SERVICES:
            base = fleet.direct_url(s)
            for path in ("/healthz", "/readyz", "/openapi.json", f"/v1/nowhere-{uuid.uuid4().hex}"):
                seen.append((client.get(base + path).status_code, f"{s.name} GET {path}"))
        payment = fleet.direct_url(by_name["payment"])
        webhook = client.post(
            f"{payment}/v1/webhooks/stripe",
            content=b'{"id": "evt_forged", "type": "invoice.paid"}',
            headers={"Stripe-Signature": "t=1,v1=forged", "Content-Type": "application/json"},
        )
        seen.append((webhook.status_code, "payment POST /v1/webhooks/stripe (forged)"))
        body, headers = _signed_webhook("customer.updated")
        for attempt in ("signed", "replayed"):
            r = client.post(f"{payment}/v1/webhooks/stripe", content=body, headers=headers)
            seen.append((r.status_code, f"payment POST /v1/webhooks/stripe ({attempt})"))
    asyncio.run(_learner_plays_and_asks_the_coach(fleet, seen))
    scoring = fleet.ports["ai-scoring"]
    asyncio.run(closed_websocket(f"ws://{fleet.host}:{scoring}/ws/v1/sessions"))
    asyncio.run(publish_malformed(fleet.amqp_url, "auth.user_registered.v1"))
    return seen


def test_the_load_got_answers_and_no_server_error(load: list[tuple[int, str]]) -> None:
    assert [s for s in load if s[0] >= 500] == []
    assert (202, "auth POST /v1/signup") in load
    forged = next(code for code, what in load if "forged" in what)
    assert 400 <= forged < 500
    assert (200, "payment POST /v1/webhooks/stripe (replayed)") in load
    assert (200, "ai-scoring POST /v1/coach/chat") in load


def test_prometheus_scrapes_every_service(prometheus: Prometheus, load: object) -> None:
    deadline = time.monotonic() + 30
    while True:
        targets = prometheus.api("targets")["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        if health == {s.name: "up" for s in SERVICES} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert health == {s.name: "up" for s in SERVICES}


def _selectors(expr: str) -> list[str]:
    """The series selectors of a panel's query: each metric it names with its matchers."""
    return [name + matchers for name, matchers in SELECTOR.findall(expr)]


def test_no_panel_pads_its_query_with_constant_series() -> None:
    """`... or vector(0)` or `... or 0 * up` answers even when the metric it charts is
    missing, so a panel would show a flat zero for a figure nobody exports."""
    padded = {
        (path.stem, panel["title"]): target["expr"]
        for path in DASHBOARDS
        for panel in _panels(path)
        for target in panel["targets"]
        if PADDING.search(target["expr"])
    }
    assert padded == {}


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_query_is_valid_and_returns_data(
    prometheus: Prometheus, load: object, dashboard: Path
) -> None:
    """Each query answers, and so does each metric it names, alone with its matchers: the
    panel charts series the fleet exports after the load, not something standing in."""
    queries = [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard)
        for target in panel["targets"]
    ]
    assert queries
    assert all(_selectors(expr) for _, expr in queries), queries
    # Counters appear when the load reaches them and rates need two scrapes: poll until then.
    deadline = time.monotonic() + PANEL_DATA_WITHIN
    while True:
        answers = {(title, expr): prometheus.query(expr) for title, expr in queries}
        invalid = {k: a.get("error") for k, a in answers.items() if a["status"] != "success"}
        assert invalid == {}, invalid
        empty = [title for (title, _), a in answers.items() if not a["data"]["result"]]
        missing: dict[str, list[str]] = {}
        for title, expr in queries:
            for selector in _selectors(expr):
                name = selector.split("{")[0]
                series = prometheus.query(selector)["data"]["result"]
                if not series or any(s["metric"]["__name__"] != name for s in series):
                    missing.setdefault(title, []).append(selector)
        if (not empty and not missing) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert empty == [], f"panels with no data after {PANEL_DATA_WITHIN} s: {empty}"
    assert missing == {}, f"metrics named by panels but not exported: {missing}"


def test_the_load_shows_up_in_the_figures(prometheus: Prometheus, load: object) -> None:
    """The panels do not merely return series: they count what the load did."""
    checks: dict[str, tuple[str, Callable[[float], bool]]] = {
        "signup counted by the metrics service": (
            'sum(sonata_domain_events_total{event="auth.user_registered.v1"})',
            lambda v: v >= 1,
        ),
        "malformed message dead-lettered": (
            'sum(sonata_events_dead_lettered_total{reason="invalid_body"})',
            lambda v: v >= 1,
        ),
        "the dead letter waits in notifications.dead": (
            'max(sonata_dead_letter_queue_messages{queue="notifications.dead"})',
            lambda v: v >= 1,
        ),
        "forged webhook refused": (
            'sum(sonata_payment_webhooks_total{type="unverified",outcome="rejected"})',
            lambda v: v == 1,
        ),
        "signed webhook handled once, its replay a duplicate": (
            'sum(sonata_payment_webhooks_total{type="customer.updated"})'
            ' and on() sum(sonata_payment_webhooks_total{outcome="duplicate"}) == 1',
            lambda v: v == 2,
        ),
        "verification and welcome emails sent": (
            'sum(sonata_notifications_sent_total{channel="email"})',
            lambda v: v >= 2,
        ),
        "the live session's notes judged": ("sum(sonata_engine_notes_total)", lambda v: v >= 30),
        "judgement latency observed": (
            "sum(sonata_engine_judgement_seconds_count)",
            lambda v: v >= 1,
        ),
        "coach answered without a model": (
            'sum(sonata_coach_request_seconds_count{backend="deterministic"})',
            lambda v: v >= 2,
        ),
        "WebSocket sessions closed": ("sum(sonata_ws_closed_total)", lambda v: v >= 2),
        "the learner counted active today": (
            'max(sonata_kpi_active_learners{window="day"})',
            lambda v: v >= 1,
        ),
        "the performance scored today": (
            'max(sonata_kpi_today{figure="performances"})',
            lambda v: v >= 1,
        ),
        "minutes practised today": ("max(sonata_kpi_practice_minutes_today)", lambda v: v > 0),
        "premium subscription in MRR": (
            'max(sonata_kpi_mrr_cents{plan="premium_monthly"})',
            lambda v: v == 999,
        ),
        "payment failure today": (
            'max(sonata_kpi_today{figure="payment_failures"})',
            lambda v: v == 1,
        ),
        "the signup counted today": ('max(sonata_kpi_today{figure="signups"})', lambda v: v >= 1),
        "the learner counted active this week": (
            'max(sonata_kpi_active_learners{window="week"})',
            lambda v: v >= 1,
        ),
        "the performance's score averaged": (
            "max(sonata_kpi_average_score_today)",
            lambda v: v > 0,
        ),
        # db announces the learner's first practice day; metrics keeps it running that day
        "the learner's streak running": (
            'max(sonata_kpi_streaks{state="active"}) and on() max(sonata_kpi_longest_streak_days)'
            " >= 1",
            lambda v: v >= 1,
        ),
        "the emails counted as delivered today": (
            'max(sonata_kpi_notifications_today{channel="email",outcome="sent"})',
            lambda v: v >= 2,
        ),
        "the subscription live": (
            'max(sonata_kpi_active_subscriptions{plan="premium_monthly"})',
            lambda v: v >= 1,
        ),
        "no 5xx anywhere (readiness refused while starting is by design)": (
            'sum(sonata_http_requests_total{status=~"5..",route!="/readyz"}) or on() vector(0)',
            lambda v: v == 0,
        ),
    }
    deadline = time.monotonic() + PANEL_DATA_WITHIN
    while True:
        failing = {}
        for what, (expr, ok) in checks.items():
            result = prometheus.query(expr)["data"]["result"]
            value = float(result[0]["value"][1]) if result else None
            if value is None or not ok(value):
                failing[what] = value
        if not failing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert failing == {}


def test_alert_rules_load_and_evaluate_quietly_on_a_healthy_fleet(
    prometheus: Prometheus, load: object
) -> None:
    # the load dead-lettered one malformed message on purpose; nothing else may fire
    expected = {"DeadLetterQueueNotEmpty"}
    deadline = time.monotonic() + PANEL_DATA_WITHIN
    while True:
        groups = prometheus.api("rules")["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        firing = {name for name, r in rules.items() if r["state"] == "firing"}
        if firing == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {
        "ServiceDown",
        "HighHttpErrorRate",
        "OutboxStuck",
        "DeadLetterQueueNotEmpty",
        "JudgementLatencyP99High",
        "PaymentWebhooksFailing",
        "NotificationsFailing",
    } <= set(rules)
    assert {name: r["health"] for name, r in rules.items() if r["health"] != "ok"} == {}
    assert firing == expected


def test_promtool_rule_unit_tests_pass() -> None:
    promtool = _binary("promtool")
    tests = sorted(str(p) for p in (ROOT / "prometheus" / "tests").glob("*.yml"))
    assert tests
    run = subprocess.run(
        [promtool, "test", "rules", *tests], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for config in ("prometheus.yml", "prometheus.local.yml"):
        check = subprocess.run(
            [promtool, "check", "config", str(ROOT / "prometheus" / config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_grafana_provisions_every_dashboard_on_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    provider = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "dashboards" / "sonata.yml").read_text()
    )["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert f"./grafana/dashboards:{provider}:ro" in compose["services"]["grafana"]["volumes"]
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(DASHBOARDS) == 4
    assert len(set(uids)) == len(uids)
    for path in DASHBOARDS:
        for panel in _panels(path):
            assert panel["datasource"]["uid"] == datasource, (path.name, panel["title"])
            assert all(t["datasource"]["uid"] == datasource for t in panel["targets"])
