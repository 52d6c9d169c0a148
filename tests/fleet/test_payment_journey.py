"""Buying premium across real processes: auth, payment, ai-scoring, notifications, the local
Stripe API and an SMTP sink.

A free learner uses up the day's scored sessions on ai-scoring's WebSocket, buys premium
through payment's checkout, the provider's signed webhooks arrive, the entitlement reaches
ai-scoring and the next session starts. Later a renewal fails: the dunning email reaches the
learner's inbox once and, after the (shortened) grace period, the learner is back on free.

Another free learner is refused the coach on a take, buys a credit pack, spends one credit on
`coach:<performance_id>` through payment's HTTP API, and the coach's feedback on that take
opens at ai-scoring, driven by the spend's event alone.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from pymongo import AsyncMongoClient
from sonata_contracts.db import PiecePublished
from sonata_engine import load_score, score_to_dict
from sonata_testing import ServiceProcess, eventually, free_port, publish_events
from sonata_testing.smtp_sink import SmtpSink, body_text
from sonata_testing.stripe_double import Price, StripeDouble
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))

from auth_fleet_support import (  # noqa: E402
    KEY_ENCRYPTION_SECRET,
    EventTap,
    StatusWatch,
    login,
    signup_verified,
)
from scoring_fleet_support import play_session, take_of, ws_url  # noqa: E402

pytestmark = pytest.mark.fleet

PIECE = ROOT.parent / "shared" / "eval" / "vienna4x22" / "musicxml" / "Mozart_K331_1st-mov.musicxml"
API_KEY = "sk_test_fleet_payment"
WEBHOOK_SECRET = "whsec_fleet_payment"
GRACE_S = 4


class Fleet:
    def __init__(self, auth: ServiceProcess, payment: ServiceProcess, scoring: ServiceProcess):
        self.auth, self.payment, self.scoring = auth, payment, scoring
        self.piece_id = f"mozart-{uuid.uuid4().hex[:6]}"
        self.scoring_db = scoring.env["MONGODB_DB"]


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[StripeDouble]:
    prices = [
        Price("price_premium_monthly", 999, "eur", "month"),
        Price("price_premium_yearly", 9900, "eur", "year"),
        Price("price_lifetime", 24900, "eur"),
        Price("price_credits_10", 499, "eur"),
    ]
    with StripeDouble(API_KEY, WEBHOOK_SECRET, prices) as server:
        yield server


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture(scope="module")
def fleet(
    mongo_url: str, amqp_url: str, stripe_api: StripeDouble, sink: SmtpSink
) -> Iterator[Fleet]:
    base = {"ENVIRONMENT": "test", "MONGODB_URL": mongo_url, "AMQP_URL": amqp_url,
            "LOG_LEVEL": "WARNING", "RELAY_POLL_INTERVAL_S": "0.2"}  # fmt: skip
    auth = ServiceProcess("auth", "sonata_auth.main:create_app", base | {
        "MONGODB_DB": f"auth_{uuid.uuid4().hex[:8]}",
        "KEY_ENCRYPTION_SECRET": KEY_ENCRYPTION_SECRET,
    })  # fmt: skip
    common = base | {"AUTH_JWKS_URL": f"{auth.base_url}/.well-known/jwks.json"}
    payment = ServiceProcess("payment", "sonata_payment.main:create_app", common | {
        "MONGODB_DB": f"payment_{uuid.uuid4().hex[:8]}",
        "STRIPE_API_BASE": stripe_api.url, "STRIPE_API_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GRACE_PERIOD_S": str(GRACE_S), "GRACE_SWEEP_INTERVAL_S": "0.5",
    })  # fmt: skip
    scoring = ServiceProcess("ai-scoring", "sonata_scoring.main:create_app", common | {
        "MONGODB_DB": f"scoring_{uuid.uuid4().hex[:8]}", "FREE_SCORED_SESSIONS_PER_DAY": "1",
    })  # fmt: skip
    port = free_port()
    notifications = ServiceProcess("notifications", "sonata_notifications.main:create_app", {
        **common,
        "MONGODB_DB": f"notifications_{uuid.uuid4().hex[:8]}",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "SMTP_HOST": sink.host, "SMTP_PORT": str(sink.port), "DISPATCH_POLL_INTERVAL_S": "0.1",
    }, port=port)  # fmt: skip
    procs = (auth, payment, scoring, notifications)
    with ThreadPoolExecutor(len(procs)) as pool:
        list(pool.map(lambda p: p.start(timeout=150), procs))
    stripe_api.webhook_url = f"{payment.base_url}/v1/webhooks/stripe"
    try:
        yield Fleet(auth, payment, scoring)
    finally:
        for proc in (notifications, scoring, payment, auth):
            proc.stop()
        for proc in (scoring, payment, notifications):
            log = proc.log_path.read_text(errors="replace")
            assert "Traceback" not in log, log[-4000:]


@pytest.fixture(scope="module")
def piece(fleet: Fleet, amqp_url: str, mongo_url: str) -> str:
    score = score_to_dict(load_score(PIECE))

    async def publish() -> None:
        await publish_events(amqp_url, [PiecePublished(
            piece_id=fleet.piece_id, version=1, title="Sonata K. 331", composer="Mozart",
            level=5, owner_id=None, visibility="public", score=score,
        )])  # fmt: skip
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        pieces = client[fleet.scoring_db].pieces

        async def kept() -> bool:
            return await pieces.count_documents({"piece_id": fleet.piece_id}) == 1

        await eventually(kept, "ai-scoring to keep the published piece")
        await client.close()

    asyncio.run(publish())
    return fleet.piece_id


async def start_session(fleet: Fleet, token: str, piece_id: str) -> dict[str, Any]:
    """Open the live WebSocket and ask to start scoring: 'started' or 'refused'."""
    url = f"ws://127.0.0.1:{fleet.scoring.port}/ws/v1/sessions"
    protocols = [Subprotocol("sonata.v1"), Subprotocol(f"bearer.{token}")]
    async with websockets.connect(url, subprotocols=protocols) as ws:
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": piece_id}))
        while True:
            msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if msg["type"] in ("started", "refused", "error"):
                return msg


@pytest.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, StatusWatch]]:
    watch = StatusWatch()
    async with httpx.AsyncClient(timeout=30, event_hooks={"response": [watch]}) as client:
        yield client, watch
    assert watch.server_errors() == []


async def test_free_learner_buys_premium_and_loses_it_after_a_failed_renewal(
    fleet: Fleet,
    piece: str,
    sink: SmtpSink,
    stripe_api: StripeDouble,
    amqp_url: str,
    http: tuple[httpx.AsyncClient, StatusWatch],
) -> None:
    client, _ = http
    email = f"learner-{uuid.uuid4().hex[:8]}@example.org"
    async with EventTap(amqp_url, "#") as tap:
        await signup_verified(client, tap, fleet.auth.base_url, email)
        token = (await login(client, fleet.auth.base_url, email))["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        registered = await tap.wait_for("auth.user_registered.v1", lambda b: b["email"] == email)
        user_id = registered["user_id"]

        async def plan_at_scoring() -> dict[str, Any]:
            r = await client.get(f"{fleet.scoring.base_url}/v1/entitlements/me", headers=bearer)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        # free: one scored session a day, then the WebSocket refuses the next
        assert (await plan_at_scoring())["limits"]["scored_sessions_per_day"] == 1
        assert (await start_session(fleet, token, piece))["type"] == "started"
        refused = await start_session(fleet, token, piece)
        assert (refused["type"], refused["code"]) == ("refused", "daily_limit")

        # checkout at payment, paid at the provider; its signed webhooks reach payment
        r = await client.post(
            f"{fleet.payment.base_url}/v1/checkout",
            json={"item": "premium_monthly"},
            headers=bearer,
        )
        assert r.status_code == 201, r.text
        events = stripe_api.complete_checkout(r.json()["session_id"])
        subscription = events[1]["data"]["object"]["id"]
        premium = await tap.wait_for(
            "payment.entitlements_changed.v1",
            lambda b: b["user_id"] == user_id and b["plan"] == "premium_monthly",
        )

        async def premium_at_scoring() -> bool:
            return bool((await plan_at_scoring())["plan"] == "premium_monthly")

        await eventually(premium_at_scoring, "ai-scoring to learn of the premium plan")
        assert (await plan_at_scoring())["limits"]["scored_sessions_per_day"] is None
        assert (await start_session(fleet, token, piece))["type"] == "started"
        assert [(d[1]) for d in stripe_api.deliveries] == [200] * len(stripe_api.deliveries)

        # the renewal fails: a dunning notice now, the free plan after the grace period
        stripe_api.fail_renewal(subscription)
        notice = await tap.wait_for("payment.payment_failed.v1", lambda b: b["user_id"] == user_id)
        assert notice["attempt"] == 1
        assert notice["grace_until"] is not None
        assert (await plan_at_scoring())["plan"] == "premium_monthly"  # within grace
        mail = await sink.wait_for(
            lambda m: m["To"] == email and "did not go through" in str(m["Subject"]),
            f"the dunning email to {email}",
        )
        amount = f"{notice['amount_cents'] / 100:.2f} {notice['currency'].upper()}"
        assert amount in body_text(mail)
        downgraded = await tap.wait_for(
            "payment.entitlements_changed.v1",
            lambda b: (
                b["user_id"] == user_id
                and b["plan"] == "free"
                and b["version"] > premium["version"]
            ),
            within_s=GRACE_S + 20,
        )
        when = datetime.fromisoformat
        assert when(downgraded["as_of"]) >= when(notice["grace_until"])

        async def payments_free_plan_at_scoring() -> bool:
            # ai-scoring's own free default here is 1 a day; payment's free plan allows 3
            now = await plan_at_scoring()
            return (now["plan"], now["limits"]["scored_sessions_per_day"]) == ("free", 3)

        await eventually(payments_free_plan_at_scoring, "ai-scoring to learn of the downgrade")
        # two of today's three are used: one more is scored, then the limit holds
        assert (await start_session(fleet, token, piece))["type"] == "started"
        refused = await start_session(fleet, token, piece)
        assert (refused["type"], refused["code"]) == ("refused", "daily_limit")

        # seconds after the dunning email went out, it is still the only one
        dunning = [m for m in sink.received(to=email) if "did not go through" in str(m["Subject"])]
        assert dunning == [mail]

        billing = await client.get(f"{fleet.payment.base_url}/v1/billing/me", headers=bearer)
        assert billing.json()["plan"] == "free"
        assert billing.json()["subscriptions"][0]["status"] == "past_due"


async def test_free_learner_spends_a_credit_and_gets_the_coach_on_that_take(
    fleet: Fleet,
    piece: str,
    stripe_api: StripeDouble,
    amqp_url: str,
    http: tuple[httpx.AsyncClient, StatusWatch],
) -> None:
    client, _ = http
    email = f"credits-{uuid.uuid4().hex[:8]}@example.org"
    async with EventTap(amqp_url, "#") as tap:
        await signup_verified(client, tap, fleet.auth.base_url, email)
        token = (await login(client, fleet.auth.base_url, email))["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        user_id = (await tap.wait_for("auth.user_registered.v1", lambda b: b["email"] == email))[
            "user_id"
        ]
        take = take_of(score_to_dict(load_score(PIECE)), first_bar=1, last_bar=2)
        performance_id = (await play_session(ws_url(fleet.scoring), token, piece, take))[
            "performance_id"
        ]
        coach_url = f"{fleet.scoring.base_url}/v1/performances/{performance_id}/coach"

        refused = await client.get(coach_url, headers=bearer)
        assert (refused.status_code, refused.json()["error"]) == (403, "coach_not_in_plan")
        assert f'"reference": "coach:{performance_id}"' in refused.json()["detail"]
        spend = {"credits": 1, "reference": f"coach:{performance_id}"}
        broke = await client.post(
            f"{fleet.payment.base_url}/v1/credits/spend", json=spend, headers=bearer
        )
        assert (broke.status_code, broke.json()["error"]) == (402, "insufficient_credits")

        r = await client.post(
            f"{fleet.payment.base_url}/v1/checkout", json={"item": "credits_10"}, headers=bearer
        )
        assert r.status_code == 201, r.text
        stripe_api.complete_checkout(r.json()["session_id"])
        await tap.wait_for(
            "payment.credits_changed.v1",
            lambda b: b["user_id"] == user_id and b["reason"] == "purchase",
        )
        spent = await client.post(
            f"{fleet.payment.base_url}/v1/credits/spend", json=spend, headers=bearer
        )
        assert spent.status_code == 200, spent.text
        assert spent.json()["balance"] == 9
        told = await tap.wait_for(
            "payment.credits_changed.v1",
            lambda b: b["user_id"] == user_id and b["reason"] == "spend",
        )
        assert (told["delta"], told["reference"]) == (-1, f"coach:{performance_id}")

        async def coach_open() -> bool:
            return (await client.get(coach_url, headers=bearer)).status_code == 200

        await eventually(coach_open, "the spend to unlock the coach at ai-scoring")
        feedback = (await client.get(coach_url, headers=bearer)).json()
        assert feedback["performance_id"] == performance_id
        assert feedback["feedback"]["drill"]["first_bar"] >= 1
        # the credit bought this take's feedback, not the plan's coach chat
        chat = await client.post(
            f"{fleet.scoring.base_url}/v1/coach/chat",
            json={"message": "what next?", "performance_id": performance_id},
            headers=bearer,
        )
        assert (chat.status_code, chat.json()["error"]) == (403, "coach_not_in_plan")
