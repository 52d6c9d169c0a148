"""notifications as a real process, sending through local SMTP, Twilio and push doubles:
what each channel delivers, what one-click unsubscribe stops, retries, permanent failures,
STOP/HELP, status callbacks that never go backwards, and erasure."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from py_vapid import Vapid02
from pymongo import AsyncMongoClient
from sonata_contracts.ai_scoring import PerformanceScored
from sonata_contracts.auth import (
    EmailVerificationRequested,
    PhoneVerificationRequested,
    UserDeleted,
    UserRegistered,
)
from sonata_contracts.db import (
    AchievementUnlocked,
    AssignmentCreated,
    MasteryReached,
    PerformanceRecorded,
    StreakChanged,
)
from sonata_contracts.payment import PaymentFailed, PaymentSucceeded, SubscriptionChanged
from sonata_testing import (
    JwksServer,
    ServiceProcess,
    SigningKey,
    TokenFactory,
    eventually,
    publish_events,
)
from sonata_testing.push_double import PushDouble, vapid_problem
from sonata_testing.smtp_sink import SmtpSink, body_html, body_text
from sonata_testing.twilio_double import TwilioDouble
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).parent))
from notifications_support import (
    notifications_env,
    start_notifications,
    vapid_keys,
)

pytestmark = pytest.mark.integration
KEY = SigningKey()
TOKENS = TokenFactory(KEY)


@pytest.fixture(scope="module")
def doubles() -> Iterator[tuple[SmtpSink, TwilioDouble, PushDouble, JwksServer]]:
    with (
        SmtpSink() as smtp,
        TwilioDouble() as twilio,
        PushDouble() as push,
        JwksServer([KEY.jwk]) as jwks,
    ):
        yield smtp, twilio, push, jwks


@pytest.fixture(scope="module")
def service(
    mongo_url: str, amqp_url: str, doubles: tuple[SmtpSink, TwilioDouble, PushDouble, JwksServer]
) -> Iterator[ServiceProcess]:
    smtp, twilio, _, jwks = doubles
    private, public = vapid_keys()
    env = notifications_env(
        mongo_url,
        amqp_url,
        smtp,
        twilio=twilio,
        jwks_url=jwks.url,
        extra={"VAPID_PRIVATE_KEY": private, "VAPID_PUBLIC_KEY": public, "LOG_LEVEL": "INFO"},
    )
    proc = start_notifications(env)
    try:
        yield proc
    finally:
        proc.stop()
        log = proc.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]


@pytest.fixture
async def http(service: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    statuses: list[int] = []

    async def watch(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    async with httpx.AsyncClient(
        base_url=service.base_url, timeout=15, event_hooks={"response": [watch]}
    ) as client:
        yield client
    assert all(s < 500 for s in statuses), statuses


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.sign(TOKENS.claims(sub=user))}"}


async def register(amqp_url: str, user: str) -> str:
    email = f"{user}@example.org"
    await publish_events(
        amqp_url,
        [
            UserRegistered(
                user_id=user,
                email=email,
                display_name="Clara",
                roles=["student"],
                locale="en",
                timezone="Europe/Vienna",
            )
        ],
    )
    return email


async def mine(http: httpx.AsyncClient, user: str) -> list[dict[str, Any]]:
    r = await http.get("/v1/notifications", headers=auth(user))
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()
    return rows


async def test_verification_email_has_html_text_and_no_unsubscribe(
    service: ServiceProcess, doubles: Any, amqp_url: str
) -> None:
    smtp = doubles[0]
    user = f"u-{uuid.uuid4().hex[:8]}"
    email = await register(amqp_url, user)
    verify = EmailVerificationRequested(
        user_id=user,
        email=email,
        token="tok",
        verify_url="https://sonata.example/verify-email?token=tok-1",
        expires_at=datetime.now(UTC) + timedelta(hours=24),
    )
    # delivered twice, as a relay retry would: one email
    await publish_events(amqp_url, [verify, verify])
    message = await smtp.wait_for(
        lambda m: m["To"] == email and "Confirm" in str(m["Subject"]), "verification"
    )
    assert "https://sonata.example/verify-email?token=tok-1" in body_text(message)
    assert 'href="https://sonata.example/verify-email?token=tok-1"' in body_html(message)
    # account mail is not a newsletter: no unsubscribe
    assert message["List-Unsubscribe"] is None
    await smtp.wait_for(lambda m: m["To"] == email and "Welcome" in str(m["Subject"]), "welcome")

    async def settled() -> bool:
        return len(smtp.received(to=email)) == 2

    await eventually(settled, "exactly two emails")
    assert len({m["Message-ID"] for m in smtp.received(to=email)}) == 2


async def test_event_without_address_goes_to_the_stored_contact(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    smtp = doubles[0]
    user = f"u-{uuid.uuid4().hex[:8]}"
    email = await register(amqp_url, user)
    failed = PaymentFailed(
        user_id=user,
        payment_id="in_1",
        amount_cents=999,
        currency="eur",
        reason="card_declined",
        attempt=1,
    )
    await publish_events(amqp_url, [failed])
    mail = await smtp.wait_for(
        lambda m: m["To"] == email and "did not go through" in str(m["Subject"]), "dunning"
    )
    assert "9.99 EUR (card_declined)" in body_text(mail)
    assert mail["List-Unsubscribe"] is None
    expected = {("welcome", "sent", "transactional"), ("payment_failed", "sent", "transactional")}

    async def both_recorded() -> bool:  # the mail can arrive before its row says "sent"
        return {(r["kind"], r["status"], r["consent"]) for r in await mine(http, user)} == expected

    await eventually(both_recorded, "both emails recorded as sent")


def scored(user: str, score: float) -> PerformanceScored:
    now = datetime.now(UTC)
    return PerformanceScored(
        performance_id=f"p-{uuid.uuid4().hex[:6]}", session_id="s-1", user_id=user,
        piece_id="fur-elise", piece_version=1, started_at=now - timedelta(minutes=3),
        finished_at=now, duration_s=180, overall_score=score, subscores={"pitch": score},
        report={},
    )  # fmt: skip


async def test_each_event_of_the_learners_life_becomes_its_email(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    smtp = doubles[0]
    user, other = f"u-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    email, other_email = await register(amqp_url, user), await register(amqp_url, other)
    # the performance summary is opt-in: one learner asks for it by email, the other does not
    r = await http.put(
        "/v1/preferences",
        json={"channels": {"performance_summary": {"email": True}}},
        headers=auth(user),
    )
    assert r.status_code == 200, r.text
    due = datetime(2026, 12, 24, 17, 0, tzinfo=UTC)
    await publish_events(
        amqp_url,
        [
            scored(user, 0.875),
            scored(other, 0.5),
            StreakChanged(user_id=user, days=6, previous_days=6, on_day=due.date(),
                          status="at_risk"),
            AssignmentCreated(assignment_id=f"a-{user}", teacher_id="t-1", student_id=user,
                              piece_id="minuet-in-g", target_score=0.8, due_at=due),
            PaymentSucceeded(user_id=user, payment_id="pi_1", amount_cents=1299, currency="eur",
                             description="Sonata Plus, December",
                             receipt_url="https://pay.example/receipts/r_1"),
            SubscriptionChanged(user_id=user, subscription_id="sub_1", plan="plus",
                                status="active", cancel_at_period_end=True,
                                current_period_end=due),
        ],
    )  # fmt: skip
    expected = {
        "Your performance scored 0.88": "You finished a performance of fur-elise.",
        "Keep your 6-day streak": "keeps your 6-day streak alive",
        "New assignment: minuet-in-g": (
            "Your teacher assigned minuet-in-g, due Thursday 24 December 2026, 18:00"
            " (Europe/Vienna)."
        ),
        "Receipt: 12.99 EUR": "We received 12.99 EUR for Sonata Plus, December.",
        "Your subscription: plus (active)": "plus, active, ending with the current period",
    }
    for subject, line in expected.items():
        mail = await smtp.wait_for(
            lambda m, s=subject: m["To"] == email and str(m["Subject"]) == s, subject
        )
        assert line in body_text(mail), (subject, body_text(mail))
    receipt = next(m for m in smtp.received(to=email) if "Receipt" in str(m["Subject"]))
    assert 'href="https://pay.example/receipts/r_1"' in body_html(receipt)
    assert receipt["List-Unsubscribe"] is None  # billing mail is transactional

    async def other_settled() -> bool:
        rows = await mine(http, other)
        return {(r["kind"], r["status"], r["error"]) for r in rows} == {
            ("welcome", "sent", None),
            ("performance_summary", "suppressed", "not opted in"),
        }

    await eventually(other_settled, "no summary for the learner who did not opt in")
    assert not [m for m in smtp.received(to=other_email) if "scored" in str(m["Subject"])]
    rows = await mine(http, user)
    assert all(r["status"] == "sent" for r in rows if r["channel"] == "email"), rows


async def test_one_click_unsubscribe_stops_that_kind_on_that_channel_only(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    smtp, _, push, _ = doubles
    user = f"u-{uuid.uuid4().hex[:8]}"
    email = await register(amqp_url, user)
    r = await http.post("/v1/push/subscriptions", json=push.subscription(), headers=auth(user))
    assert r.status_code == 201, r.text
    endpoint = r.json()["endpoint"]

    first = AchievementUnlocked(user_id=user, achievement="first-piece", title="First piece")
    await publish_events(amqp_url, [first])
    mail = await smtp.wait_for(lambda m: "First piece" in str(m["Subject"]), "achievement")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(mail["List-Unsubscribe"]).strip().strip("<>")

    # a link scanner's GET changes nothing; the RFC 8058 POST does, without any login
    page = await http.get(link)
    assert page.status_code == 200, (link, page.text)
    assert "<form" in page.text
    r = await http.post(link, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200, r.text
    prefs = (await http.get("/v1/preferences", headers=auth(user))).json()
    assert prefs["channels"]["achievement"] == {"email": False, "push": True}

    second = AchievementUnlocked(user_id=user, achievement="ten-days", title="Ten days")
    mastery = MasteryReached(user_id=user, piece_id="fur-elise", threshold=0.9)
    await publish_events(amqp_url, [second, mastery])
    await smtp.wait_for(lambda m: "fur-elise" in str(m["Subject"]), "mastery email")

    async def pushed_both() -> bool:
        titles = {d.payload["title"] for d in push.received(endpoint)}
        return {"Achievement unlocked: Ten days", "You mastered fur-elise"} <= titles

    await eventually(pushed_both, "the second achievement and the mastery as push")
    assert not [m for m in smtp.received(to=email) if "Ten days" in str(m["Subject"])]
    rows = await mine(http, user)
    suppressed = [r for r in rows if r["status"] == "suppressed"]
    assert [(r["kind"], r["channel"], r["error"]) for r in suppressed] == [
        ("achievement", "email", "unsubscribed")
    ]
    assert (await http.post("/v1/unsubscribe/not-a-token")).status_code == 404


async def test_a_browser_that_failed_for_a_while_gets_the_push_once_and_the_other_not_twice(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    push = doubles[2]
    user = f"u-{uuid.uuid4().hex[:8]}"
    laptop, phone = push.subscription(), push.subscription()
    push.answer[phone["endpoint"]] = 503  # the phone's push service is down for now
    for subscription in (laptop, phone):
        r = await http.post("/v1/push/subscriptions", json=subscription, headers=auth(user))
        assert r.status_code == 201
    await publish_events(
        amqp_url, [AchievementUnlocked(user_id=user, achievement="b", title="Both browsers")]
    )

    async def phone_refused() -> bool:
        return bool(push.received(laptop["endpoint"])) and (phone["endpoint"], 503) in push.refusals

    await eventually(phone_refused, "the push on the laptop, and the phone refusing it")
    push.answer.pop(phone["endpoint"])  # the phone's push service is back

    async def phone_has_it() -> bool:
        return bool(push.received(phone["endpoint"]))

    await eventually(phone_has_it, "the push on the phone after a retry")

    async def sent() -> bool:
        rows = [r for r in await mine(http, user) if r["channel"] == "push"]
        return len(rows) == 1 and rows[0]["status"] == "sent"

    await eventually(sent, "the push recorded as sent")
    assert [d.payload["title"] for d in push.received(laptop["endpoint"])] == [
        "Achievement unlocked: Both browsers"
    ]
    assert [d.payload["title"] for d in push.received(phone["endpoint"])] == [
        "Achievement unlocked: Both browsers"
    ]


async def test_gone_push_subscription_is_dropped_and_the_failure_is_visible(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    push = doubles[2]
    user = f"u-{uuid.uuid4().hex[:8]}"
    subscription = push.subscription()
    push.answer[subscription["endpoint"]] = 410
    r = await http.post("/v1/push/subscriptions", json=subscription, headers=auth(user))
    assert r.status_code == 201
    # no contact: the email leg has no address and fails; the push leg meets a 410
    await publish_events(amqp_url, [AchievementUnlocked(user_id=user, achievement="a", title="A")])

    async def both_failed() -> bool:
        rows = await mine(http, user)
        return len(rows) == 2 and all(r["status"] == "failed" for r in rows)

    await eventually(both_failed, "both legs failed permanently")
    errors = {r["channel"]: r["error"] for r in await mine(http, user)}
    assert "gone" in errors["push"]
    assert "no address" in errors["email"]
    r = await http.delete(
        "/v1/push/subscriptions", params={"endpoint": subscription["endpoint"]}, headers=auth(user)
    )
    assert r.status_code == 404  # already removed after the 410


async def test_a_push_signed_with_another_vapid_key_is_refused_and_recorded(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    push: PushDouble = doubles[2]
    user = f"u-{uuid.uuid4().hex[:8]}"
    served = (await http.get("/v1/push/public-key")).json()["public_key"]
    # the browser subscribed with a key pair this service does not sign with
    subscription = push.subscription(application_server_key=vapid_keys()[1])
    r = await http.post("/v1/push/subscriptions", json=subscription, headers=auth(user))
    assert r.status_code == 201
    await publish_events(amqp_url, [AchievementUnlocked(user_id=user, achievement="v", title="V")])

    async def failed() -> bool:
        rows = [r for r in await mine(http, user) if r["channel"] == "push"]
        return bool(rows) and rows[0]["status"] == "failed"

    await eventually(failed, "the push recorded as failed")
    [row] = [r for r in await mine(http, user) if r["channel"] == "push"]
    assert "refused with 403" in row["error"]
    assert push.received(subscription["endpoint"]) == []
    [(_, status, why)] = [v for v in push.vapid_refusals if v[0] == subscription["endpoint"]]
    assert (status, why) == (403, "k is not the application server key of this subscription")

    # the same service reaches a browser subscribed with the key it serves
    good = push.subscription(application_server_key=served)
    r = await http.post("/v1/push/subscriptions", json=good, headers=auth(user))
    assert r.status_code == 201
    await publish_events(amqp_url, [AchievementUnlocked(user_id=user, achievement="w", title="W")])

    async def delivered() -> bool:
        return bool(push.received(good["endpoint"]))

    await eventually(delivered, "the push signed with the served key")


def test_the_push_double_checks_the_vapid_token() -> None:
    private, public = vapid_keys()
    endpoint = "http://127.0.0.1:9/push/abc"
    vapid = Vapid02.from_raw(private.encode())

    def header(claims: dict[str, Any], signer: Vapid02 = vapid) -> str:
        sent = signer.sign(dict(claims))["Authorization"]
        return sent.replace(sent.split("k=")[1], public) if signer is not vapid else sent

    later = int(time.time()) + 3600
    ok = {"aud": "http://127.0.0.1:9", "exp": later, "sub": "mailto:a@b.c"}
    assert vapid_problem(header(ok), endpoint, public) is None
    assert vapid_problem(header(ok), endpoint, None) is None
    other = Vapid02.from_raw(vapid_keys()[0].encode())
    assert vapid_problem(header(ok, other), endpoint, None) == (
        401,
        "the VAPID signature does not match k",
    )
    assert vapid_problem("WebPush abc", endpoint, None) == (401, "no VAPID authorization")
    assert vapid_problem(header({**ok, "aud": "https://evil.example"}), endpoint, None) == (
        403,
        "aud 'https://evil.example' is not 'http://127.0.0.1:9'",
    )
    expired = {**ok, "exp": int(time.time()) - 60}
    assert vapid_problem(header(expired), endpoint, None) == (
        403,
        "exp is not within the next 24 hours",
    )


async def test_quiet_hours_hold_a_message_until_they_end_in_the_users_timezone(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient, mongo_url: str
) -> None:
    smtp = doubles[0]
    user = f"u-{uuid.uuid4().hex[:8]}"
    email = await register(amqp_url, user)
    tz = ZoneInfo("Asia/Kathmandu")  # UTC+05:45: a window read as UTC would be off
    local = datetime.now(tz)
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    quiet = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
    body = {"timezone": "Asia/Kathmandu", "quiet_hours": quiet}
    assert (await http.put("/v1/preferences", json=body, headers=auth(user))).status_code == 200
    await publish_events(amqp_url, [AchievementUnlocked(user_id=user, achievement="q", title="Q")])
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    rows = client[service.env["MONGODB_DB"]]["notifications"]
    try:

        async def deferred() -> bool:
            return await rows.find_one({"user_id": user, "kind": "achievement"}) is not None

        await eventually(deferred, "the achievement recorded")
        row = await rows.find_one({"user_id": user, "kind": "achievement"})
        assert row is not None
        ends = end.replace(second=0, microsecond=0)
        assert (row["status"], row["error"]) == ("queued", "deferred by quiet hours")
        assert row["next_attempt_at"] == ends.astimezone(UTC)
        await asyncio.sleep(1.5)  # the dispatcher polls every 0.1 s: it leaves it alone
        assert not [m for m in smtp.received(to=email) if "Achievement" in str(m["Subject"])]
        # the window's end comes: the same worker sends it
        await rows.update_one({"_id": row["_id"]}, {"$set": {"next_attempt_at": datetime.now(UTC)}})
        await smtp.wait_for(lambda m: m["To"] == email and "Q" in str(m["Subject"]), "after")
    finally:
        await client.close()


async def test_the_hourly_limit_suppresses_the_excess_and_records_why(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    smtp = doubles[0]
    user = f"u-{uuid.uuid4().hex[:8]}"
    email = await register(amqp_url, user)  # RATE_LIMIT_PER_HOUR is 10 (the default)
    events = [
        AchievementUnlocked(user_id=user, achievement=f"a{i}", title=f"Badge {i}")
        for i in range(12)
    ]
    failed = PaymentFailed(
        user_id=user, payment_id="in_9", amount_cents=500, currency="eur",
        reason="card_declined", attempt=1,
    )  # fmt: skip
    await publish_events(amqp_url, [*events, failed])

    async def settled() -> bool:
        rows = await mine(http, user)
        return len(rows) == 14 and all(r["status"] in ("sent", "suppressed") for r in rows)

    await eventually(settled, "every message sent or suppressed")
    rows = await mine(http, user)
    badges = [r for r in rows if r["kind"] == "achievement"]
    assert sorted(r["status"] for r in badges) == ["sent"] * 10 + ["suppressed"] * 2
    assert {r["error"] for r in badges if r["status"] == "suppressed"} == {"rate limited"}
    # account and billing mail is not counted and not limited
    assert {(r["kind"], r["status"]) for r in rows if r["kind"] != "achievement"} == {
        ("welcome", "sent"),
        ("payment_failed", "sent"),
    }

    async def mailed() -> bool:
        return len(smtp.received(to=email)) == 12

    await eventually(mailed, "ten badges, the welcome and the dunning email")


async def test_the_send_is_logged_under_the_correlation_id_of_its_event(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient, mongo_url: str
) -> None:
    smtp = doubles[0]
    user = f"u-{uuid.uuid4().hex[:8]}"
    email = await register(amqp_url, user)
    request_id = f"req-{uuid.uuid4().hex}"  # X-Request-ID of the request that caused it
    event = AchievementUnlocked(
        user_id=user, achievement="c", title="Traced", correlation_id=request_id
    )
    await publish_events(amqp_url, [event])
    await smtp.wait_for(lambda m: m["To"] == email and "Traced" in str(m["Subject"]), "email")

    async def recorded() -> bool:
        return any(
            r["kind"] == "achievement" and r["status"] == "sent" for r in await mine(http, user)
        )

    await eventually(recorded, "the achievement recorded as sent")
    [row] = [r for r in await mine(http, user) if r["kind"] == "achievement"]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        stored = await client[service.env["MONGODB_DB"]]["notifications"].find_one(
            {"user_id": user, "kind": "achievement"}
        )
        outbox = await client[service.env["MONGODB_DB"]]["outbox"].find_one(
            {"body": {"$regex": row["id"]}}
        )
    finally:
        await client.close()
    assert stored is not None
    assert stored["meta"]["correlation_id"] == request_id
    assert outbox is not None
    assert outbox["correlation_id"] == request_id

    async def logged() -> list[dict[str, Any]]:
        lines = []
        for line in service.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and row["id"] in line:
                lines.append(json.loads(line))
        return lines

    async def sent_logged() -> bool:
        return any(entry["message"].startswith("sent achievement") for entry in await logged())

    await eventually(sent_logged, "the send in the service's log")
    [sent] = [e for e in await logged() if e["message"].startswith("sent achievement")]
    assert sent["correlation_id"] == request_id
    assert sent["logger"] == "sonata.notifications.delivery"


async def test_temporary_smtp_failure_is_retried_with_backoff(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    smtp = doubles[0]
    user = f"u-{uuid.uuid4().hex[:8]}"
    smtp.temporary_failures = 2
    email = await register(amqp_url, user)
    await smtp.wait_for(lambda m: m["To"] == email, "the welcome after two 451s")

    async def recorded() -> bool:
        rows = await mine(http, user)
        return len(rows) == 1 and rows[0]["status"] == "sent"

    await eventually(recorded, "the welcome recorded as sent")
    [row] = await mine(http, user)
    assert row["attempts"] == 3

    refused = f"u-{uuid.uuid4().hex[:8]}"
    smtp.refused.add(f"{refused}@example.org")
    await register(amqp_url, refused)

    async def failed() -> bool:
        rows = await mine(http, refused)
        return bool(rows) and rows[0]["status"] == "failed"

    await eventually(failed, "a permanent failure for a refused mailbox")
    [row] = await mine(http, refused)
    assert row["attempts"] == 1
    assert "refused" in row["error"]


async def consent_to_sms(http: httpx.AsyncClient, user: str, consent: bool = True) -> None:
    r = await http.put("/v1/preferences", json={"sms_consent": consent}, headers=auth(user))
    assert r.status_code == 200, r.text
    assert r.json()["sms_consent"] is consent


def code_for(user: str, phone: str, code: str) -> PhoneVerificationRequested:
    return PhoneVerificationRequested(
        user_id=user, phone=phone, code=code, expires_at=datetime.now(UTC) + timedelta(minutes=10)
    )


async def test_a_status_callback_before_the_send_is_recorded_is_not_lost(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    twilio: TwilioDouble = doubles[1]
    user = f"u-{uuid.uuid4().hex[:8]}"
    phone = "+43660" + str(uuid.uuid4().int)[:7]
    # Twilio calls back while the send is still waiting for its answer
    await consent_to_sms(http, user)
    twilio.early_statuses = [("sent", None), ("undelivered", "30003")]
    code = PhoneVerificationRequested(
        user_id=user,
        phone=phone,
        code="731905",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    await publish_events(amqp_url, [code])

    async def undelivered() -> bool:
        rows = await mine(http, user)
        return len(rows) == 1 and rows[0]["status"] == "failed"

    await eventually(
        undelivered, "the early 'undelivered' callback applied once the send is recorded"
    )
    [row] = await mine(http, user)
    assert row["error"] == "SMS undelivered (Twilio error 30003)"
    assert [m.to for m in twilio.messages].count(phone) == 1


async def test_a_code_the_user_asked_for_is_texted_without_a_standing_opt_in(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    twilio: TwilioDouble = doubles[1]
    user = f"u-{uuid.uuid4().hex[:8]}"
    phone = "+43660" + str(uuid.uuid4().int)[:7]
    prefs = (await http.get("/v1/preferences", headers=auth(user))).json()
    assert prefs["sms_consent"] is False
    await publish_events(amqp_url, [code_for(user, phone, "604112")])

    async def texted() -> bool:
        return any("604112" in m.body for m in twilio.messages if m.to == phone)

    await eventually(texted, "the code by SMS: asking for it is the consent")

    async def recorded() -> bool:
        return [(r["status"], r["consent"]) for r in await mine(http, user)] == [
            ("sent", "requested")
        ]

    await eventually(recorded, "the record says why it could be sent")


async def test_twilio_busy_is_retried_and_a_refused_number_fails_visibly(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    twilio: TwilioDouble = doubles[1]
    user = f"u-{uuid.uuid4().hex[:8]}"
    phone = "+43660" + str(uuid.uuid4().int)[:7]
    await consent_to_sms(http, user)
    twilio.fail_next_with = [503, 429]  # Twilio down, then rate limiting
    code = code_for(user, phone, "905118")
    await publish_events(amqp_url, [code])

    async def sent() -> bool:
        rows = await mine(http, user)
        return [(r["status"], r["attempts"]) for r in rows] == [("sent", 3)]

    await eventually(sent, "the code sent on the third attempt")
    assert [m.idempotency_token for m in twilio.messages if m.to == phone] == [f"{code.id}:sms"]

    other = f"u-{uuid.uuid4().hex[:8]}"
    await consent_to_sms(http, other)
    await publish_events(amqp_url, [code_for(other, "0660 123", "905119")])

    async def refused() -> bool:
        rows = await mine(http, other)
        return len(rows) == 1 and rows[0]["status"] == "failed"

    await eventually(refused, "the code to a number Twilio refuses recorded as failed")
    [row] = await mine(http, other)
    assert row["attempts"] == 1  # refused for good: not retried
    assert row["error"].startswith("Twilio 400 (21211)"), row["error"]


async def test_sms_code_callbacks_stop_and_help(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient
) -> None:
    twilio: TwilioDouble = doubles[1]
    user = f"u-{uuid.uuid4().hex[:8]}"
    phone = "+43660" + str(uuid.uuid4().int)[:7]
    await consent_to_sms(http, user)
    code = code_for(user, phone, "482913")
    await publish_events(amqp_url, [code])

    async def texted() -> bool:
        return any(m.to == phone for m in twilio.messages)

    await eventually(texted, "the code by SMS")
    [sms] = [m for m in twilio.messages if m.to == phone]
    assert "482913" in sms.body
    assert sms.from_ == "+15005550006"
    assert sms.idempotency_token == f"{code.id}:sms"

    async def recorded(provider_status: str | None) -> bool:
        rows = await mine(http, user)
        return len(rows) == 1 and (rows[0]["status"], rows[0]["provider_status"]) == (
            "sent",
            provider_status,
        )

    await eventually(lambda: recorded(None), "the code recorded as sent")
    assert twilio.send_status(sms, "sent") == 204
    await eventually(lambda: recorded("sent"), "the 'sent' callback applied")
    assert twilio.send_status(sms, "delivered") == 204
    await eventually(lambda: recorded("delivered"), "the 'delivered' callback applied")
    # late and out of order: none of them moves the message back or fails it
    assert twilio.send_status(sms, "sent") == 204
    assert twilio.send_status(sms, "queued") == 204
    assert twilio.send_status(sms, "undelivered", "30003") == 204

    callback = sms.status_callback or ""
    failed = {"MessageSid": sms.sid, "MessageStatus": "failed", "ErrorCode": "30005"}
    forged = await http.post(
        callback, data=failed, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    )
    assert forged.status_code == 403
    assert forged.json()["error"] == "bad_signature"
    unsigned = await http.post(callback, data=failed)
    assert unsigned.status_code == 403
    # a real signature, taken from another callback, does not cover changed parameters
    genuine = {"MessageSid": sms.sid, "MessageStatus": "read"}
    signature = RequestValidator(twilio.auth_token).compute_signature(callback, genuine)
    tampered = await http.post(callback, data=failed, headers={"X-Twilio-Signature": signature})
    assert tampered.status_code == 403
    await asyncio.sleep(0.5)
    [row] = await mine(http, user)
    assert (row["status"], row["provider_status"], row["error"]) == ("sent", "delivered", None)

    inbound = f"{service.base_url}/v1/twilio/inbound"
    help_reply = twilio.signed_post(inbound, {"From": phone, "Body": "help"})
    assert "Reply STOP" in help_reply.text
    # nobody but Twilio can stop a number's texts
    forged_stop = await http.post(
        inbound, data={"From": phone, "Body": "STOP"}, headers={"X-Twilio-Signature": "x"}
    )
    assert forged_stop.status_code == 403
    prefs = (await http.get("/v1/preferences", headers=auth(user))).json()
    assert prefs["sms_consent"] is True

    stop_reply = twilio.signed_post(inbound, {"From": phone, "Body": " Stop "})
    assert "no more texts" in stop_reply.text
    prefs = (await http.get("/v1/preferences", headers=auth(user))).json()
    assert prefs["sms_consent"] is False  # STOP revoked the consent the app shows
    await publish_events(amqp_url, [code_for(user, phone, "111111")])

    async def suppressed() -> bool:
        return any(r["error"] == "the number replied STOP" for r in await mine(http, user))

    await eventually(suppressed, "the second code suppressed after STOP")
    # opting in again in the app does not override the number's STOP
    await consent_to_sms(http, user)
    await publish_events(amqp_url, [code_for(user, phone, "222222")])

    async def both_suppressed() -> bool:
        rows = await mine(http, user)
        return sum(r["error"] == "the number replied STOP" for r in rows) == 2

    await eventually(both_suppressed, "the third code suppressed too")
    assert [m.body for m in twilio.messages if m.to == phone] == [sms.body]

    start_reply = twilio.signed_post(inbound, {"From": phone, "Body": "start"})
    assert "on again" in start_reply.text
    prefs = (await http.get("/v1/preferences", headers=auth(user))).json()
    assert prefs["sms_consent"] is True
    await publish_events(amqp_url, [code_for(user, phone, "333333")])

    async def texted_again() -> bool:
        return any("333333" in m.body for m in twilio.messages if m.to == phone)

    await eventually(texted_again, "a code texted again after START")
    assert len([m for m in twilio.messages if m.to == phone]) == 2


async def test_user_deleted_erases_everything(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient, mongo_url: str
) -> None:
    smtp, twilio, push, _ = doubles
    user = f"u-{uuid.uuid4().hex[:8]}"
    phone = "+43660" + str(uuid.uuid4().int)[:7]
    email = await register(amqp_url, user)
    subscription = push.subscription()
    r = await http.post("/v1/push/subscriptions", json=subscription, headers=auth(user))
    assert r.status_code == 201
    r = await http.put(
        "/v1/preferences", json={"reminder_time": "18:00", "sms_consent": True}, headers=auth(user)
    )
    assert r.status_code == 200
    soon = datetime.now(UTC) + timedelta(days=3)
    await publish_events(
        amqp_url,
        [
            PhoneVerificationRequested(user_id=user, phone=phone, code="1", expires_at=soon),
            AchievementUnlocked(user_id=user, achievement="e", title="Erase me"),
            PerformanceRecorded(
                performance_id="p1", user_id=user, piece_id="x", piece_version=1,
                overall_score=0.5, duration_s=60, played_at=datetime.now(UTC),
            ),
            AssignmentCreated(
                assignment_id=f"a-{user}", teacher_id="t-1", student_id=user, piece_id="x",
                target_score=0.8, due_at=soon,
            ),
        ],
    )  # fmt: skip
    await smtp.wait_for(lambda m: m["To"] == email and "Erase me" in str(m["Subject"]), "email")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    db = client[service.env["MONGODB_DB"]]

    async def all_out() -> bool:
        rows = await mine(http, user)
        settled = len(rows) == 6 and all(r["status"] == "sent" for r in rows)
        pending = await db["outbox"].count_documents({"published_at": None})
        return settled and pending == 0 and bool(push.received(subscription["endpoint"]))

    try:
        await eventually(all_out, "every notification sent and its event published")
        assert twilio.signed_post(
            f"{service.base_url}/v1/twilio/inbound", {"From": phone, "Body": "STOP"}
        ).is_success
        traces = (user, email, phone, subscription["endpoint"])

        async def holding() -> set[str]:
            found = set()
            for name in await db.list_collection_names():
                async for row in db[name].find({}):
                    if any(t in json.dumps(row, default=str) for t in traces):
                        found.add(name)
            return found

        before = await holding()
        assert {"contacts", "notifications", "preferences", "push_subscriptions",
                "push_deliveries", "practice_days", "assignment_dues", "sms_opt_outs",
                "outbox"} <= before, before  # fmt: skip
        await publish_events(amqp_url, [UserDeleted(user_id=user)])

        async def erased() -> bool:
            return await holding() == set()

        await eventually(erased, "nothing of the user left in any collection")
        prefs = (await http.get("/v1/preferences", headers=auth(user))).json()
        assert prefs["reminder_time"] is None
        assert prefs["timezone"] == "UTC"
    finally:
        await client.close()


async def test_bad_input_gets_a_clear_4xx(service: ServiceProcess, http: httpx.AsyncClient) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    r = await http.put("/v1/preferences", json={"timezone": "Mars/Olympus"}, headers=auth(user))
    assert r.status_code == 422
    assert "Mars/Olympus" in r.text
    r = await http.put("/v1/preferences", json={"reminder_time": "25:00"}, headers=auth(user))
    assert r.status_code == 422
    r = await http.put(
        "/v1/preferences", json={"channels": {"spam": {"email": True}}}, headers=auth(user)
    )
    assert r.status_code == 422
    assert "spam" in r.text
    for channels, reason in [
        ({"achievement": {"sms": False}}, "achievement is not sent by sms (only email, push)"),
        ({"password_reset": {"email": False}}, "password_reset is an account or billing message"),
    ]:
        r = await http.put("/v1/preferences", json={"channels": channels}, headers=auth(user))
        assert r.status_code == 422, r.text
        assert reason in r.text
    prefs = (await http.get("/v1/preferences", headers=auth(user))).json()
    assert "password_reset" not in prefs["channels"]
    assert prefs["channels"]["achievement"] == {"email": True, "push": True}
    assert (await http.get("/v1/preferences")).status_code == 401
    bad = {"endpoint": "ftp://x", "keys": {"p256dh": "x", "auth": "y"}}
    r = await http.post("/v1/push/subscriptions", json=bad, headers=auth(user))
    assert r.status_code == 422


async def test_push_subscriptions_need_usable_keys_and_an_https_endpoint(
    service: ServiceProcess, doubles: Any, http: httpx.AsyncClient
) -> None:
    push: PushDouble = doubles[2]
    user = f"u-{uuid.uuid4().hex[:8]}"
    good = push.subscription()

    async def subscribe(endpoint: str, p256dh: str, auth_secret: str) -> httpx.Response:
        body = {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth_secret}}
        return await http.post("/v1/push/subscriptions", json=body, headers=auth(user))

    keys = good["keys"]
    not_on_curve = "BA" + "A" * 85  # 65 bytes starting 0x04, but (0, 0) is no P-256 point
    for p256dh, auth_secret, reason in [
        ("abc", keys["auth"], "65-byte uncompressed P-256 point"),
        ("not base64url!", keys["auth"], "p256dh is not base64url"),
        (not_on_curve, keys["auth"], "not a point on P-256"),
        (keys["p256dh"], "c2hvcnQ", "auth must be 16 bytes"),
    ]:
        r = await subscribe(good["endpoint"], p256dh, auth_secret)
        assert r.status_code == 422, r.text
        assert reason in r.text
    for endpoint in ("http://push.example.com/p/1", "http://10.0.0.1/p/1", "https:///nohost"):
        r = await subscribe(endpoint, keys["p256dh"], keys["auth"])
        assert r.status_code == 422, (endpoint, r.text)
    assert "https" in (await subscribe("http://push.example.com/p/2", **_keys(good))).text
    # https anywhere, plain http to loopback only because this service runs as ENVIRONMENT=test
    assert (await subscribe("https://push.example.com/p/1", **_keys(good))).status_code == 201
    assert (await subscribe(good["endpoint"], **_keys(good))).status_code == 201


def _keys(subscription: dict[str, Any]) -> dict[str, str]:
    return {"p256dh": subscription["keys"]["p256dh"], "auth_secret": subscription["keys"]["auth"]}


async def test_a_stored_subscription_with_broken_keys_fails_visibly_and_is_dropped(
    service: ServiceProcess, doubles: Any, amqp_url: str, http: httpx.AsyncClient, mongo_url: str
) -> None:
    push: PushDouble = doubles[2]
    user = f"u-{uuid.uuid4().hex[:8]}"
    # stored before keys were checked: the API refuses such keys now
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    subscriptions = client[service.env["MONGODB_DB"]]["push_subscriptions"]
    endpoint = push.subscription()["endpoint"]
    await subscriptions.insert_one(
        {"user_id": user, "endpoint": endpoint, "p256dh": "abc", "auth": "abc",
         "created_at": datetime.now(UTC)}
    )  # fmt: skip
    try:
        await publish_events(
            amqp_url, [AchievementUnlocked(user_id=user, achievement="k", title="Keys")]
        )

        async def failed() -> bool:
            rows = [r for r in await mine(http, user) if r["channel"] == "push"]
            return bool(rows) and rows[0]["status"] == "failed"

        await eventually(failed, "the push recorded as failed")
        [row] = [r for r in await mine(http, user) if r["channel"] == "push"]
        assert "unusable subscription keys: p256dh must be a 65-byte" in row["error"]
        assert row["attempts"] == 1
        assert await subscriptions.find_one({"endpoint": endpoint}) is None
        assert push.received(endpoint) == []
    finally:
        await client.close()
