"""auth and db as real processes: a teacher uploads a MusicXML piece and assigns it; two
students (Auckland and Los Angeles) sign up through auth, join by invite and play it; their
scored takes arrive as `ai_scoring.performance_scored.v1` events carrying reports the engine
made from real performances; the record, progress, mastery, streaks (in each learner's own
days) and the teacher's view follow, and no answer is a 5xx."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyotp
import pytest
from sonata_engine import SessionOptions
from sonata_testing import ServiceProcess, eventually, publish_events

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2] / "services" / "db" / "tests" / "integration"))

from auth_fleet_support import (
    PASSWORD,
    EventTap,
    login,
    signup_verified,
    stop_and_check_log,
)
from db_takes import catalogue_bytes, scored, take

pytestmark = pytest.mark.fleet
ZONES = {"ana": "Pacific/Auckland", "leo": "America/Los_Angeles"}


@pytest.fixture(scope="module")
def library(mongo_url: str, amqp_url: str, auth: ServiceProcess) -> Iterator[ServiceProcess]:
    env = {
        "ENVIRONMENT": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": f"library_fleet_{uuid.uuid4().hex[:8]}",
        "AMQP_URL": amqp_url,
        "AUTH_JWKS_URL": f"{auth.base_url}/.well-known/jwks.json",
        "LOG_LEVEL": "WARNING",
        "SEED_CATALOGUE": "false",  # the teacher uploads the piece this journey plays
        "FREE_TEACHER_SEATS": "2",  # no payment here: the teacher's two students fit the free plan
    }
    proc = ServiceProcess("db", "sonata_db.main:create_app", env).start(timeout=90)
    yield proc
    stop_and_check_log(proc)


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def teacher_tokens(
    http: httpx.AsyncClient, tap: EventTap, auth: ServiceProcess, email: str
) -> dict[str, Any]:
    """A teacher as production makes one: the operator grants the role, TOTP is enrolled."""
    await signup_verified(http, tap, auth.base_url, email)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "sonata_auth.cli", "set-roles", email, "teacher"],
        env={**os.environ, **auth.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    r = await http.post(f"{auth.base_url}/v1/login", json={"email": email, "password": PASSWORD})
    challenge = r.json()["challenge"]
    r = await http.post(f"{auth.base_url}/v1/2fa/totp/enrol", json={"enrolment_token": challenge})
    code = pyotp.TOTP(r.json()["secret"]).now()
    r = await http.post(
        f"{auth.base_url}/v1/2fa/totp/confirm", json={"code": code, "enrolment_token": challenge}
    )
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()["tokens"]
    return tokens


async def student_tokens(
    http: httpx.AsyncClient, tap: EventTap, auth: ServiceProcess, email: str, zone: str
) -> tuple[str, dict[str, Any]]:
    r = await http.post(
        f"{auth.base_url}/v1/signup", json={"email": email, "password": PASSWORD, "timezone": zone}
    )
    assert r.status_code == 202, r.text
    event = await tap.wait_for(
        "auth.email_verification_requested.v1", lambda b: b["email"] == email
    )
    r = await http.post(f"{auth.base_url}/v1/email/verify", json={"token": event["token"]})
    assert r.status_code == 200, r.text
    return event["user_id"], await login(http, auth.base_url, email)


async def test_teacher_assigns_two_students_play_across_their_own_days(
    auth: ServiceProcess, library: ServiceProcess, http: httpx.AsyncClient, amqp_url: str
) -> None:
    db = library.base_url
    async with EventTap(amqp_url, binding="#") as tap:
        teacher = bearer(
            await teacher_tokens(http, tap, auth, f"t-{uuid.uuid4().hex[:6]}@example.com")
        )
        students: dict[str, tuple[str, dict[str, str]]] = {}
        for name, zone in ZONES.items():
            user_id, tokens = await student_tokens(
                http, tap, auth, f"{name}-{uuid.uuid4().hex[:6]}@example.com", zone
            )
            students[name] = (user_id, bearer(tokens))

        # db learns each learner's timezone from auth's user_registered event.
        for name, (_, headers) in students.items():

            async def zone_known(headers: dict[str, str] = headers, name: str = name) -> bool:
                r = await http.get(f"{db}/v1/me/profile", headers=headers)
                return bool(r.json()["timezone"] == ZONES[name])

            await eventually(zone_known, f"{name}'s timezone in db")

        r = await http.post(
            f"{db}/v1/pieces",
            headers=teacher,
            files={"file": ("minuet.musicxml", catalogue_bytes("minuet-in-g"))},
            data={"title": "Minuet in G (studio copy)", "level": "2", "tags": "baroque"},
        )
        assert r.status_code == 201, r.text
        piece = r.json()
        assert [s["name"] for s in piece["sections"]] == ["A", "A'"]
        await tap.wait_for("db.piece_published.v1", lambda b: b["piece_id"] == piece["piece_id"])
        for _, headers in students.values():
            invite = (
                await http.post(f"{db}/v1/invites", json={"relation": "teacher"}, headers=teacher)
            ).json()
            r = await http.post(f"{db}/v1/invites/{invite['code']}/accept", headers=headers)
            assert r.status_code == 200, r.text
        ana_id, ana = students["ana"]
        leo_id, leo = students["leo"]
        r = await http.post(
            f"{db}/v1/assignments",
            json={
                "student_id": ana_id,
                "piece_id": piece["piece_id"],
                "first_bar": 1,
                "last_bar": 8,
                "hands": "both",
                "target_score": 85,
            },
            headers=teacher,
        )
        assert r.status_code == 201, r.text
        assignment_id = r.json()["assignment_id"]
        await tap.wait_for(
            "db.assignment_created.v1", lambda b: b["assignment_id"] == assignment_id
        )

        # Three takes each at 12:00 UTC on three days: 01:00 the next day in Auckland,
        # 04:00 the same day in Los Angeles.
        now = datetime.now(UTC)
        noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
        noon = noon if noon <= now else noon - timedelta(days=1)
        instants = [noon - timedelta(days=k) for k in (2, 1, 0)]
        bars = SessionOptions(first_bar=1, last_bar=8)
        sent = {
            "ana": [
                scored(ana_id, piece["piece_id"], take("minuet-in-g", d, bars), t)
                for d, t in zip((3, 6, 0), instants, strict=True)
            ],
            "leo": [
                scored(leo_id, piece["piece_id"], take("minuet-in-g", d), t)
                for d, t in zip((8, 3, 0), instants, strict=True)
            ],
        }
        await publish_events(amqp_url, [e for takes in sent.values() for e in takes])

        for name, (user_id, headers) in students.items():
            zone = ZoneInfo(ZONES[name])
            days = [t.astimezone(zone).date().isoformat() for t in instants]
            for k, day in enumerate(days, start=1):
                streak = await tap.wait_for(
                    "db.streak_changed.v1",
                    lambda b, u=user_id, d=day: b["user_id"] == u and b["on_day"] == d,
                )
                assert streak["days"] == k
            mastery = await tap.wait_for(
                "db.mastery_reached.v1", lambda b, u=user_id: b["user_id"] == u
            )
            assert mastery["piece_id"] == piece["piece_id"]
            progress = (await http.get(f"{db}/v1/me/progress", headers=headers)).json()
            assert progress["streak_days"] == 3
            (played,) = progress["pieces"]
            assert played["performances"] == 3
            assert played["mastered"] is True
            assert played["last"] == sent[name][-1].overall_score
            history = (await http.get(f"{db}/v1/me/performances", headers=headers)).json()
            assert history["total"] == 3
        ana_days = {t.astimezone(ZoneInfo(ZONES["ana"])).date() for t in instants}
        leo_days = {t.astimezone(ZoneInfo(ZONES["leo"])).date() for t in instants}
        assert ana_days != leo_days  # the same instants, different calendar days

        done = await tap.wait_for(
            "db.assignment_completed.v1", lambda b: b["assignment_id"] == assignment_id
        )
        assert done["student_id"] == ana_id
        results = (await http.get(f"{db}/v1/students/{ana_id}/results", headers=teacher)).json()
        (minuet,) = results["pieces"]
        assert sorted(map(int, minuet["heatmap"])) == list(range(1, 9))
        assert results["assignments"][0]["completed_at"] is not None
        assert results["practice_minutes"] > 0
        # Leo cannot read Ana's take, nor Ana's results as if he were her teacher.
        perf = sent["ana"][0].performance_id
        assert (await http.get(f"{db}/v1/me/performances/{perf}", headers=leo)).status_code == 404
        r = await http.get(f"{db}/v1/students/{ana_id}/results", headers=leo)
        assert r.status_code == 403
        r = await http.get(f"{db}/v1/me/performances/{perf}/roll.svg", headers=ana)
        assert r.status_code == 200
        assert "<svg" in r.text
