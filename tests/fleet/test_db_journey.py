"""auth, db and ai-scoring as real processes: a teacher uploads a MusicXML piece and assigns
it; two students (Auckland and Los Angeles) sign up through auth and join by invite; db
publishes the piece and ai-scoring keeps its copy; each student plays it three times over
ai-scoring's WebSocket (takes made from the score's own notes, with a few mistakes) and db
records what ai-scoring scored: the record, progress, mastery, the assignment and the
teacher's view follow, and no answer is a 5xx.

The streak needs takes on earlier days, which nobody can play today: the two days before come
as the `ai_scoring.performance_scored.v1` events ai-scoring sent then, at 00:30 and 23:30 of
each learner's own calendar days (UTC days would break the streak); today's take, played
live, makes it three days in each zone.

The piece is the teacher's private one: ai-scoring lets each student play it because db's
`db.assignment_created.v1` told it the teacher assigned it to them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
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
from scoring_fleet_support import play_session, start_scoring, take_of, ws_url

pytestmark = pytest.mark.fleet
ZONES = {"ana": "Pacific/Auckland", "leo": "America/Los_Angeles"}
ANA_BARS = (1, 8)  # what the teacher assigns Ana, and what she plays
# Three live takes each: (k-th notes played a semitone off, k-th notes left out).
MISTAKES = [({5}, {11}), ({7}, set()), (set(), {3})]


@pytest.fixture(scope="module")
def fleet(
    mongo_url: str, amqp_url: str, auth: ServiceProcess
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    library = ServiceProcess(
        "db",
        "sonata_db.main:create_app",
        {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": f"library_fleet_{uuid.uuid4().hex[:8]}",
            "AMQP_URL": amqp_url,
            "AUTH_JWKS_URL": f"{auth.base_url}/.well-known/jwks.json",
            "LOG_LEVEL": "WARNING",
            "RELAY_POLL_INTERVAL_S": "0.2",
            "SEED_CATALOGUE": "false",  # the teacher uploads the piece this journey plays
            "FREE_TEACHER_SEATS": "2",  # no payment here: the two students fit the free plan
        },
    )
    # the free plan's 3 sessions a day would do; the margin keeps a retried start harmless
    scoring = start_scoring(mongo_url, amqp_url, auth, {"FREE_SCORED_SESSIONS_PER_DAY": "10"})
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: p.start(timeout=150), (library, scoring)))
    except Exception:
        for proc in (library, scoring):
            proc.stop()  # the one that did start must not outlive the test
        raise
    yield library, scoring
    stop_and_check_log(library)
    stop_and_check_log(scoring)


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


async def clear_of_midnight(zones: list[ZoneInfo], margin_s: float = 240) -> None:
    """Wait (rarely, at most ``margin_s``) until no zone's local midnight falls within the next
    ``margin_s``, so each learner's "today" holds for the rest of the journey."""
    while True:
        now = datetime.now(UTC)
        left = []
        for zone in zones:
            local = now.astimezone(zone)
            midnight = datetime.combine(local.date() + timedelta(days=1), time(0), zone)
            left.append((midnight - local).total_seconds())
        if min(left) > margin_s:
            return
        await asyncio.sleep(min(left) + 1)


def at(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour, minute), zone).astimezone(UTC)


async def test_teacher_assigns_two_students_play_through_scoring_across_their_own_days(
    auth: ServiceProcess,
    fleet: tuple[ServiceProcess, ServiceProcess],
    http: httpx.AsyncClient,
    amqp_url: str,
) -> None:
    library, scoring = fleet
    db = library.base_url
    async with EventTap(amqp_url, binding="#") as tap:
        teacher = bearer(
            await teacher_tokens(http, tap, auth, f"t-{uuid.uuid4().hex[:6]}@example.com")
        )
        students: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, zone in ZONES.items():
            students[name] = await student_tokens(
                http, tap, auth, f"{name}-{uuid.uuid4().hex[:6]}@example.com", zone
            )
        ana_id, ana_tokens = students["ana"]
        leo_id = students["leo"][0]
        ana, leo = bearer(ana_tokens), bearer(students["leo"][1])

        # db learns each learner's timezone from auth's user_registered event.
        for name, (_, tokens) in students.items():
            headers = bearer(tokens)

            async def zone_known(headers: dict[str, str] = headers, name: str = name) -> bool:
                r = await http.get(f"{db}/v1/me/profile", headers=headers)
                return bool(r.json()["timezone"] == ZONES[name])

            await eventually(zone_known, f"{name}'s timezone in db")

        r = await http.post(
            f"{db}/v1/pieces",
            headers=teacher,
            files={"file": ("minuet.musicxml", catalogue_bytes("minuet-in-g"))},
            data={
                "title": "Minuet in G (studio copy)",
                "level": "2",
                "tags": "baroque",
                "visibility": "private",
            },
        )
        assert r.status_code == 201, r.text
        piece = r.json()
        piece_id = piece["piece_id"]
        assert [s["name"] for s in piece["sections"]] == ["A", "A'"]
        await tap.wait_for("db.piece_published.v1", lambda b: b["piece_id"] == piece_id)
        for headers in (ana, leo):
            invite = (
                await http.post(f"{db}/v1/invites", json={"relation": "teacher"}, headers=teacher)
            ).json()
            r = await http.post(f"{db}/v1/invites/{invite['code']}/accept", headers=headers)
            assert r.status_code == 200, r.text
        r = await http.post(
            f"{db}/v1/assignments",
            json={
                "student_id": ana_id,
                "piece_id": piece_id,
                "first_bar": ANA_BARS[0],
                "last_bar": ANA_BARS[1],
                "hands": "both",
                "target_score": 85,
            },
            headers=teacher,
        )
        assert r.status_code == 201, r.text
        assignment_id = r.json()["assignment_id"]
        r = await http.post(
            f"{db}/v1/assignments",
            json={"student_id": leo_id, "piece_id": piece_id, "target_score": 85},
            headers=teacher,
        )
        assert r.status_code == 201, r.text
        for assigned in (assignment_id, r.json()["assignment_id"]):
            await tap.wait_for(
                "db.assignment_created.v1", lambda b, a=assigned: b["assignment_id"] == a
            )
        # The students' app reads the score from db, as a learner may.
        r = await http.get(f"{db}/v1/pieces/{piece_id}/score", headers=ana)
        assert r.status_code == 200, r.text
        score = r.json()

        # The two days before today, in each learner's own calendar: weak takes (half the
        # notes missing) just after midnight two days ago and just before midnight yesterday.
        zones = {name: ZoneInfo(z) for name, z in ZONES.items()}
        await clear_of_midnight(list(zones.values()))
        today = {name: datetime.now(UTC).astimezone(z).date() for name, z in zones.items()}
        bars = {"ana": SessionOptions(first_bar=ANA_BARS[0], last_bar=ANA_BARS[1]), "leo": None}
        earlier = []
        for name, (user_id, _) in students.items():
            d, z = today[name], zones[name]
            for when in (at(d - timedelta(days=2), 0, 30, z), at(d - timedelta(days=1), 23, 30, z)):
                earlier.append(scored(user_id, piece_id, take("minuet-in-g", 2, bars[name]), when))
        assert all(e.overall_score < 80 for e in earlier)
        await publish_events(amqp_url, earlier)
        for name, (user_id, _) in students.items():
            for k in (1, 2):
                day = (today[name] - timedelta(days=3 - k)).isoformat()
                streak = await tap.wait_for(
                    "db.streak_changed.v1",
                    lambda b, u=user_id, d=day: b["user_id"] == u and b["on_day"] == d,
                    within_s=60,
                )
                assert streak["days"] == k

        # Today: three takes each, live over ai-scoring's WebSocket.
        url = ws_url(scoring)

        async def practise(name: str) -> list[dict[str, Any]]:
            token = students[name][1]["access_token"]
            first, last = ANA_BARS if name == "ana" else (None, None)
            options = {"bars": {"first": first, "last": last}} if first else {}
            finished = []
            for wrong, dropped in MISTAKES:
                events = take_of(
                    score, first_bar=first, last_bar=last, wrong=wrong, dropped=dropped
                )
                finished.append(
                    await play_session(url, token, piece_id, events, options, wait_for_piece_s=60)
                )
            return finished

        played = dict(zip(students, await asyncio.gather(*map(practise, students)), strict=True))

        for name, (user_id, tokens) in students.items():
            headers = bearer(tokens)
            live = played[name]
            assert all(f["overall"] >= 80 for f in live), [f["overall"] for f in live]
            for f in live:
                await tap.wait_for(
                    "db.performance_recorded.v1",
                    lambda b, p=f["performance_id"]: b["performance_id"] == p,
                    within_s=60,
                )
            day = today[name].isoformat()
            streak = await tap.wait_for(
                "db.streak_changed.v1",
                lambda b, u=user_id, d=day: b["user_id"] == u and b["on_day"] == d,
                within_s=60,
            )
            assert streak["days"] == 3
            mastery = await tap.wait_for(
                "db.mastery_reached.v1", lambda b, u=user_id: b["user_id"] == u, within_s=60
            )
            assert mastery["piece_id"] == piece_id
            progress = (await http.get(f"{db}/v1/me/progress", headers=headers)).json()
            assert progress["streak_days"] == 3
            assert progress["today"] == today[name].isoformat()
            (practised,) = progress["pieces"]
            assert practised["performances"] == 5
            assert practised["mastered"] is True
            assert practised["last"] == pytest.approx(live[-1]["overall"], abs=0.01)
            assert practised["best"] == pytest.approx(max(f["overall"] for f in live), abs=0.01)
            history = (await http.get(f"{db}/v1/me/performances", headers=headers)).json()
            assert history["total"] == 5
            recorded = {p["performance_id"]: p for p in history["items"]}
            for f in live:
                assert recorded[f["performance_id"]]["local_day"] == today[name].isoformat()
            days = sorted(p["local_day"] for p in history["items"])
            assert days[:2] == [
                (today[name] - timedelta(days=2)).isoformat(),
                (today[name] - timedelta(days=1)).isoformat(),
            ]

        done = await tap.wait_for(
            "db.assignment_completed.v1",
            lambda b: b["assignment_id"] == assignment_id,
            within_s=60,
        )
        assert done["student_id"] == ana_id
        assert done["performance_id"] in {f["performance_id"] for f in played["ana"]}
        results = (await http.get(f"{db}/v1/students/{ana_id}/results", headers=teacher)).json()
        (minuet,) = results["pieces"]
        assert minuet["performances"] == 5
        assert minuet["mastered"] is True
        assert sorted(map(int, minuet["heatmap"])) == list(range(ANA_BARS[0], ANA_BARS[1] + 1))
        assert results["assignments"][0]["completed_at"] is not None
        assert results["practice_minutes"] > 0
        assert results["streak_days"] == 3
        # Leo cannot read Ana's take, nor Ana's results as if he were her teacher.
        perf = played["ana"][0]["performance_id"]
        assert (await http.get(f"{db}/v1/me/performances/{perf}", headers=leo)).status_code == 404
        r = await http.get(f"{db}/v1/students/{ana_id}/results", headers=leo)
        assert r.status_code == 403
        r = await http.get(f"{db}/v1/me/performances/{perf}/roll.svg", headers=ana)
        assert r.status_code == 200
        assert "<svg" in r.text
