"""auth and notifications as real processes with an SMTP sink on loopback.

- signup: the verification email lands in the sink and its link verifies the account;
- practice reminders: the scheduler's clock is moved with SCHEDULER_CLOCK_START (it then runs
  at real speed) to 17:30 UTC, which is 18:30 in Vienna and 12:30 in New York. Learners who
  chose 18:00 in Vienna and 12:00 in New York are reminded, one who chose 18:00 in New York is
  not (not yet their time), nor one in Vienna who already played today;
- the reminder's one-click unsubscribe stops reminders by email only.
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from sonata_contracts.db import AchievementUnlocked, PerformanceRecorded
from sonata_testing import ServiceProcess, eventually, publish_events
from sonata_testing.smtp_sink import SmtpSink, body_text

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(
    0, str(Path(__file__).parents[2] / "services" / "notifications" / "tests" / "integration")
)
from auth_fleet_support import PASSWORD, stop_and_check_log
from notifications_support import notifications_env, start_notifications

pytestmark = pytest.mark.fleet

CLOCK = datetime(2026, 3, 10, 17, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture(scope="module")
def notifications(
    mongo_url: str, amqp_url: str, sink: SmtpSink, auth: ServiceProcess
) -> Iterator[ServiceProcess]:
    env = notifications_env(
        mongo_url,
        amqp_url,
        sink,
        jwks_url=f"{auth.base_url}/.well-known/jwks.json",
        extra={"SCHEDULER_CLOCK_START": CLOCK.isoformat()},
    )
    proc = start_notifications(env)
    yield proc
    stop_and_check_log(proc)


async def signup_by_email(
    http: httpx.AsyncClient, auth: ServiceProcess, sink: SmtpSink, timezone: str
) -> tuple[str, str]:
    """Sign up, follow the link from the real email, log in: (email, access token)."""
    email = f"learner-{uuid.uuid4().hex[:8]}@example.org"
    r = await http.post(
        f"{auth.base_url}/v1/signup",
        json={"email": email, "password": PASSWORD, "display_name": "Clara", "timezone": timezone},
    )
    assert r.status_code == 202, r.text
    mail = await sink.wait_for(
        lambda m: m["To"] == email and "Confirm" in str(m["Subject"]), f"verification to {email}"
    )
    link = re.search(r"https?://\S+verify-email\?token=\S+", body_text(mail))
    assert link is not None, body_text(mail)
    token = httpx.URL(link.group(0)).params["token"]
    r = await http.post(f"{auth.base_url}/v1/email/verify", json={"token": token})
    assert r.status_code == 200, r.text
    r = await http.post(f"{auth.base_url}/v1/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return email, r.json()["access_token"]


async def test_signup_email_link_verifies_and_reminders_follow_local_time(
    auth: ServiceProcess,
    notifications: ServiceProcess,
    sink: SmtpSink,
    http: httpx.AsyncClient,
    amqp_url: str,
) -> None:
    r = await http.post(
        f"{auth.base_url}/v1/login", json={"email": "nobody@example.org", "password": PASSWORD}
    )
    assert r.status_code == 401  # nothing else works before verification either

    learners = {
        "vienna": ("Europe/Vienna", "18:00"),
        "new_york_noon": ("America/New_York", "12:00"),
        "new_york_evening": ("America/New_York", "18:00"),
        "vienna_practised": ("Europe/Vienna", "18:00"),
    }
    emails: dict[str, str] = {}
    ids: dict[str, str] = {}
    tokens: dict[str, dict[str, str]] = {}
    for name, (timezone, at) in learners.items():
        email, token = await signup_by_email(http, auth, sink, timezone)
        emails[name] = email
        headers = tokens[name] = {"Authorization": f"Bearer {token}"}
        me = await http.get(f"{auth.base_url}/v1/me", headers=headers)
        assert me.status_code == 200, me.text
        ids[name] = me.json()["id"]
        if name == "vienna_practised":
            played = PerformanceRecorded(
                performance_id=uuid.uuid4().hex,
                user_id=ids[name],
                piece_id="fur-elise",
                piece_version=1,
                overall_score=0.9,
                duration_s=95.0,
                played_at=CLOCK - timedelta(hours=2),  # 16:30 in Vienna, the same local day
            )
            # the queue is consumed in order: once the achievement's email is out, the
            # practice is recorded too
            marker = AchievementUnlocked(user_id=ids[name], achievement="b", title="Played")
            await publish_events(amqp_url, [played, marker])
            await sink.wait_for(
                lambda m, to=email: m["To"] == to and "Played" in str(m["Subject"]),
                "marker email",
            )
        r = await http.put(
            f"{notifications.base_url}/v1/preferences",
            json={"timezone": timezone, "reminder_time": at},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["reminder_time"] == at

    def reminder_for(name: str) -> list[EmailMessage]:
        return [m for m in sink.received(to=emails[name]) if m["Subject"] == "Time to practise"]

    async def due_ones_reminded() -> bool:
        return bool(reminder_for("vienna")) and bool(reminder_for("new_york_noon"))

    await eventually(due_ones_reminded, "reminders in Vienna and New York", within=30)
    # several scheduler passes later, still one reminder each and none for the others
    await asyncio.sleep(3)  # SCHEDULER_INTERVAL_S is 0.5 here: about six more passes
    assert len(reminder_for("vienna")) == 1
    assert len(reminder_for("new_york_noon")) == 1
    assert reminder_for("new_york_evening") == []
    assert reminder_for("vienna_practised") == []

    # one-click unsubscribe from the reminder email: reminders by email stop, nothing else
    [reminder] = reminder_for("vienna")
    assert reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(reminder["List-Unsubscribe"]).strip().strip("<>")
    r = await http.post(link, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200, r.text
    assert "practice reminder" in r.text
    r = await http.get(f"{notifications.base_url}/v1/preferences", headers=tokens["vienna"])
    assert r.json()["channels"]["practice_reminder"] == {"email": False, "push": True}
    achievement = AchievementUnlocked(user_id=ids["vienna"], achievement="a", title="First week")
    await publish_events(amqp_url, [achievement])
    await sink.wait_for(
        lambda m: m["To"] == emails["vienna"] and "First week" in str(m["Subject"]),
        "an achievement email after unsubscribing from reminders",
    )
