"""The practice record through db's API: scored takes (real engine reports, real events) become
history, reports, piano rolls, MIDI, progress, mastery, streaks and achievements; teachers and
parents see what they are allowed to; nobody reads anyone else's record; deletion erases all."""

from __future__ import annotations

import io
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import mido
import pytest
from bson import json_util
from pymongo import AsyncMongoClient
from sonata_contracts.auth import UserDeleted
from sonata_engine import SessionOptions
from sonata_testing import eventually, publish_events

sys.path.insert(0, str(Path(__file__).parent))

from db_api_support import Events, Users, accept_once_seated, grant, play
from db_takes import catalogue_bytes, scored, take

pytestmark = pytest.mark.integration

TWINKLE = "catalogue-twinkle-theme"
MINUET = "catalogue-minuet-in-g"


async def test_takes_become_history_progress_mastery_streak_and_achievements(
    http: httpx.AsyncClient, users: Users, events: Events, library_amqp_url: str
) -> None:
    learner_id, learner = users.new("student")
    r = await http.put(
        "/v1/me/profile",
        json={"timezone": "Pacific/Auckland", "weekly_goal_minutes": 1, "rest_days_per_week": 0},
        headers=learner,
    )
    assert r.status_code == 200, r.text
    for zone in ("Mars/Olympus", "America", "../etc/passwd", "UTC\u0000"):
        r = await http.put("/v1/me/profile", json={"timezone": zone}, headers=learner)
        assert r.status_code == 422, zone
        assert "unknown timezone" in r.json()["detail"]

    now = datetime.now(UTC)
    takes = [(3, 2), (2, 5), (1, 8), (0, 0)]  # (days ago, every n-th note missed)
    sent = [
        scored(learner_id, TWINKLE, take("twinkle-theme", drop), now - timedelta(days=ago))
        for ago, drop in takes
    ]
    scores = [e.overall_score for e in sent]
    assert scores[0] < 80 <= min(scores[1:])
    resent = sent[-1].model_copy(update={"id": uuid.uuid4()})
    await play(http, library_amqp_url, learner, [*sent, resent])

    r = await http.get("/v1/me/performances", params={"page_size": 2}, headers=learner)
    page = r.json()
    assert page["total"] == 4
    assert [p["performance_id"] for p in page["items"]] == [
        sent[3].performance_id,
        sent[2].performance_id,
    ]
    assert "report" not in page["items"][0]

    auckland = ZoneInfo("Pacific/Auckland")
    local_days = [e.finished_at.astimezone(auckland).date() for e in sent]
    streaks = await events.all("db.streak_changed.v1", user_id=learner_id)
    assert [s["on_day"] for s in streaks] == [d.isoformat() for d in local_days]
    assert [s["days"] for s in streaks] == [1, 2, 3, 4]

    mastery = await events.wait_for("db.mastery_reached.v1", user_id=learner_id)
    assert mastery["piece_id"] == TWINKLE
    assert mastery["unlocked_piece_ids"] == ["catalogue-ode-to-joy"]
    unlocked = {a["achievement"] for a in await events.all("db.achievement_unlocked.v1")}
    mine = await http.get("/v1/me/achievements", headers=learner)
    assert {a["achievement"] for a in mine.json()} == {
        "first_performance",
        "score_90",
        "first_mastery",
    }
    assert {"first_performance", "score_90", "first_mastery"} <= unlocked

    progress = (await http.get("/v1/me/progress", headers=learner)).json()
    assert progress["streak_days"] == 4
    assert progress["timezone"] == "Pacific/Auckland"
    assert progress["weekly_goal_met"] is (progress["week_minutes"] >= 1)
    (twinkle,) = progress["pieces"]
    assert twinkle["best"] == max(scores)
    assert twinkle["last"] == scores[-1]
    assert twinkle["trend"] > 0
    assert twinkle["mastered"] is True
    assert set(twinkle["sections"]) == {"verse", "bridge", "outro"}
    assert progress["recommendation"]["piece_id"] == "catalogue-c-major-scale"

    path = {p["piece_id"]: p for p in (await http.get("/v1/me/skill-path", headers=learner)).json()}
    assert path[TWINKLE]["mastered"] is True
    assert path["catalogue-ode-to-joy"]["unlocked"] is True
    assert path["catalogue-minuet-in-g"]["unlocked"] is False

    detail = (await http.get(f"/v1/me/progress/{TWINKLE}", headers=learner)).json()
    assert sorted(map(int, detail["heatmap"])) == list(range(1, 13))
    assert all(0.0 <= v <= 1.0 for v in detail["heatmap"].values())

    first = sent[0].performance_id
    r = await http.get(f"/v1/me/performances/{first}", headers=learner)
    summary = r.json()
    assert summary["full_report"] is False  # the free plan shows the summary, and says why
    assert summary["report"] is None
    assert summary["overall_score"] == scores[0]
    assert "premium" in summary["reason"]
    await grant(library_amqp_url, learner_id, "premium_monthly")

    async def full_report() -> bool:
        r = await http.get(f"/v1/me/performances/{first}", headers=learner)
        return bool(r.json()["full_report"])

    await eventually(full_report, "the premium plan applied")
    r = await http.get(f"/v1/me/performances/{first}", headers=learner)
    assert r.json()["report"]["overall"] == scores[0]
    r = await http.get(f"/v1/me/performances/{first}/roll.svg", headers=learner)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in r.text
    assert "missed" in r.text
    r = await http.get(f"/v1/me/performances/{first}/performance.mid", headers=learner)
    assert r.status_code == 200
    midi = mido.MidiFile(file=io.BytesIO(r.content))
    played = [n for n in sent[0].report["notes"] if n["perf_id"]]
    note_ons = [m for m in midi.tracks[0] if m.type == "note_on"]
    assert len(note_ons) == len(played)
    assert sorted(m.note for m in note_ons) == sorted(n["pitch"] for n in played)


async def _link(
    http: httpx.AsyncClient, guardian: dict[str, str], child: dict[str, str], relation: str
) -> None:
    r = await http.post("/v1/invites", json={"relation": relation}, headers=guardian)
    assert r.status_code == 201, r.text
    r = await accept_once_seated(http, r.json()["code"], child)
    assert r.status_code == 200, r.text


async def test_teacher_assigns_student_completes_parent_watches_outsiders_see_nothing(
    http: httpx.AsyncClient, users: Users, events: Events, library_amqp_url: str
) -> None:
    teacher_id, teacher = users.new("teacher")
    student_id, student = users.new("student")
    parent_id, parent = users.new("parent")
    _, other_student = users.new("student")
    other_teacher_id, other_teacher = users.new("teacher")
    _, other_parent = users.new("parent")
    _, other_child = users.new("student")
    _, spare_student = users.new("student")
    await grant(library_amqp_url, teacher_id, "teacher", seats=1)
    await _link(http, teacher, student, "teacher")
    # The teacher's one seat is taken: the next student is refused, saying what unlocks more.
    code = (await http.post("/v1/invites", json={"relation": "teacher"}, headers=teacher)).json()
    r = await http.post(f"/v1/invites/{code['code']}/accept", headers=spare_student)
    assert r.status_code == 403
    assert r.json()["error"] == "teacher_seats_full"
    assert "unlocks more students" in r.json()["detail"]
    # A teacher payment has not told db about has the free plan's seats: none.
    r = await http.post("/v1/invites", json={"relation": "teacher"}, headers=other_teacher)
    r = await http.post(f"/v1/invites/{r.json()['code']}/accept", headers=other_child)
    assert r.status_code == 403
    await grant(library_amqp_url, other_teacher_id, "teacher", seats=5)
    await _link(http, parent, student, "parent")
    await _link(http, other_teacher, other_child, "teacher")
    await _link(http, other_parent, other_child, "parent")
    r = await http.post("/v1/invites", json={"relation": "teacher"}, headers=student)
    assert r.status_code == 403

    assignment = {"student_id": student_id, "piece_id": MINUET, "first_bar": 1, "last_bar": 8}
    r = await http.post("/v1/assignments", json={**assignment, "target_score": 85}, headers=teacher)
    assert r.status_code == 201, r.text
    assignment_id = r.json()["assignment_id"]
    created = await events.wait_for("db.assignment_created.v1", assignment_id=assignment_id)
    assert created["bars"] == [1, 8]
    assert created["target_score"] == 85
    r = await http.post("/v1/assignments", json=assignment, headers=other_teacher)
    assert r.status_code == 404
    r = await http.post("/v1/assignments", json={**assignment, "last_bar": 40}, headers=teacher)
    assert r.status_code == 422
    r = await http.post("/v1/assignments", json=assignment, headers=student)
    assert r.status_code == 403

    bars = SessionOptions(first_bar=1, last_bar=8)
    now = datetime.now(UTC)
    weak = scored(student_id, MINUET, take("minuet-in-g", 2, bars), now - timedelta(hours=2))
    good = scored(student_id, MINUET, take("minuet-in-g", 0, bars), now)
    assert weak.overall_score < 85 <= good.overall_score
    await play(http, library_amqp_url, student, [weak])
    mine = (await http.get("/v1/me/assignments", headers=student)).json()
    assert mine[0]["completed_at"] is None
    assert mine[0]["best_score"] == weak.overall_score
    await play(http, library_amqp_url, student, [good])
    done = await events.wait_for("db.assignment_completed.v1", assignment_id=assignment_id)
    assert done["performance_id"] == good.performance_id

    students = (await http.get("/v1/students", headers=teacher)).json()
    assert [s["student_id"] for s in students] == [student_id]
    results = (await http.get(f"/v1/students/{student_id}/results", headers=teacher)).json()
    (minuet,) = results["pieces"]
    assert minuet["performances"] == 2
    assert sorted(map(int, minuet["heatmap"])) == list(range(1, 9))
    assert results["practice_minutes"] > 0
    assert results["assignments"][0]["completed_by"] == good.performance_id
    child = (await http.get(f"/v1/children/{student_id}", headers=parent)).json()
    assert child["assignments"][0]["assignment_id"] == assignment_id
    assert child["pieces"][0]["best"] == good.overall_score
    assert [c["student_id"] for c in (await http.get("/v1/children", headers=parent)).json()] == [
        student_id
    ]

    # Every route of the OpenAPI naming a record, tried with this student's ids by someone with
    # no claim on them; every route naming none, checked to show nothing of theirs.
    ode = {"file": ("p.musicxml", catalogue_bytes("ode-to-joy"))}
    private_id = (await http.post("/v1/pieces", headers=teacher, files=ode)).json()["piece_id"]
    on_private = scored(student_id, private_id, take("ode-to-joy", 3), now)
    await play(http, library_amqp_url, student, [on_private])
    theirs = {
        "performance_id": on_private.performance_id,
        "piece_id": private_id,
        "student_id": student_id,
        "child_id": student_id,
    }
    leaks = await outsiders_reach(
        http,
        theirs,
        [student_id, on_private.performance_id, good.performance_id, private_id],
        [other_student, other_teacher, other_parent],
    )
    assert leaks == []
    assert (await http.get(f"/v1/pieces/{private_id}", headers=teacher)).status_code == 200
    r = await http.get(f"/v1/me/progress/{private_id}", headers=student)
    assert r.json()["performances"] == 1
    assert parent_id not in (await http.get("/v1/students", headers=teacher)).text
    assert teacher_id == created["teacher_id"]


# Routes anyone may call with a value they were handed: the value is the permission.
BY_DESIGN = {("post", "/v1/invites/{code}/accept"): "an invite code is handed out to be used"}


async def outsiders_reach(
    http: httpx.AsyncClient,
    theirs: dict[str, str],
    secrets: list[str],
    outsiders: list[dict[str, str]],
) -> list[str]:
    """Every operation of db's OpenAPI, by each outsider: one naming a record (filled from
    ``theirs``) must answer 403 or 404; one naming none must show none of ``secrets``. A
    path parameter with no value in ``theirs`` is a failure, so a new route cannot go
    untried."""
    spec = (await http.get("/openapi.json")).json()
    problems: list[str] = []
    tried = 0
    for template, operations in spec["paths"].items():
        for method in operations:
            if (method, template) in BY_DESIGN:
                continue
            names = re.findall(r"{(\w+)}", template)
            missing = [n for n in names if n not in theirs]
            if missing:
                problems.append(f"{method} {template}: no record of theirs for {missing}")
                continue
            if not names and method != "get":
                continue  # writes naming no record act on the caller's own
            path = template.format(**{n: theirs[n] for n in names})
            for outsider in outsiders:
                tried += 1
                body = {} if method in ("post", "put", "patch") else None
                r = await http.request(method.upper(), path, headers=outsider, json=body)
                if names and r.status_code not in (403, 404):
                    problems.append(f"{method} {path}: {r.status_code} to an outsider")
                elif not names and r.status_code not in (200, 403):
                    problems.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
                problems += [
                    f"{method} {path} shows {secret}" for secret in secrets if secret in r.text
                ]
    assert tried > 40, tried
    return problems


async def test_export_holds_everything_and_deletion_erases_it(
    http: httpx.AsyncClient,
    users: Users,
    events: Events,
    library_amqp_url: str,
    mongo_url: str,
    library_db: str,
) -> None:
    teacher_id, teacher = users.new("teacher")
    learner_id, learner = users.new("student")
    await grant(library_amqp_url, teacher_id, "teacher", seats=5)
    await _link(http, teacher, learner, "teacher")
    r = await http.put("/v1/me/profile", json={"timezone": "Asia/Tokyo"}, headers=learner)
    assert r.status_code == 200
    r = await http.post(
        "/v1/pieces",
        headers=teacher,
        files={"file": ("s.musicxml", catalogue_bytes("c-major-scale"))},
    )
    piece_id = r.json()["piece_id"]
    r = await http.patch(f"/v1/pieces/{piece_id}", json={"level": 2}, headers=teacher)
    assert r.json()["version"] == 2
    r = await http.post(
        "/v1/pieces", headers=teacher, files={"file": ("o.musicxml", catalogue_bytes("ode-to-joy"))}
    )
    withdrawn_id = r.json()["piece_id"]
    assert (await http.delete(f"/v1/pieces/{withdrawn_id}", headers=teacher)).status_code == 204
    r = await http.post(
        "/v1/assignments",
        json={"student_id": learner_id, "piece_id": piece_id, "target_score": 70},
        headers=teacher,
    )
    assert r.status_code == 201
    await play(
        http,
        library_amqp_url,
        learner,
        [scored(learner_id, piece_id, take("c-major-scale", 0), datetime.now(UTC))],
    )
    export = (await http.get("/v1/me/export", headers=learner)).json()
    assert export["user_id"] == learner_id
    assert len(export["performances"]) == 1
    assert export["performance_reports"][0]["report"]["overall"] > 70
    assert len(export["links"]) == 1
    assert len(export["assignments"]) == 1
    assert export["assignments"][0]["completed_at"] is not None
    assert {u["key"] for u in export["unlocks"]} >= {"first_performance"}
    teacher_export = (await http.get("/v1/me/export", headers=teacher)).json()
    assert [p["piece_id"] for p in teacher_export["pieces"]] == [piece_id]
    # A withdrawn piece's versions stay (old takes draw against them), and are the owner's.
    assert sorted(
        (v["piece_id"], v["version"]) for v in teacher_export["piece_versions"]
    ) == sorted([(piece_id, 1), (piece_id, 2), (withdrawn_id, 1)])
    assert all(v["score"]["notes"] for v in teacher_export["piece_versions"])
    assert [e["teacher_seats"] for e in teacher_export["entitlements"]] == [5]

    await publish_events(
        library_amqp_url, [UserDeleted(user_id=learner_id), UserDeleted(user_id=teacher_id)]
    )
    await events.wait_for("db.piece_withdrawn.v1", piece_id=piece_id)

    async def erased() -> bool:
        data = (await http.get("/v1/me/export", headers=learner)).json()
        return not any(data[k] for k in data if isinstance(data[k], list))

    await eventually(erased, "the learner's data erased")
    data = (await http.get("/v1/me/export", headers=teacher)).json()
    assert not any(v for v in data.values() if isinstance(v, list))
    assert await documents_naming(mongo_url, library_db, [learner_id, teacher_id]) == []
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        kept = client[library_db].piece_versions
        assert await kept.count_documents({"piece_id": {"$in": [piece_id, withdrawn_id]}}) == 0
    finally:
        await client.close()


async def documents_naming(mongo_url: str, database: str, ids: list[str]) -> list[str]:
    """Every document of every collection of db's database that holds one of ``ids``."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    found = []
    try:
        db = client[database]
        for name in await db.list_collection_names():
            async for doc in db[name].find({}):
                text = json_util.dumps(doc)
                found += [f"{name}: {text[:200]}" for i in ids if i in text]
    finally:
        await client.close()
    return found
