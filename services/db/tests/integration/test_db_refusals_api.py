"""Input db cannot use is refused with a reason, never a 5xx: due dates without an offset,
versions past any real one, and stored reports the piano roll cannot draw."""

from __future__ import annotations

import copy
import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import mido
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from db_api_support import Users, accept_once_seated, grant, play
from db_takes import scored, take

pytestmark = pytest.mark.integration

TWINKLE = "catalogue-twinkle-theme"


async def test_a_due_date_needs_an_offset_and_is_kept_in_utc(
    http: httpx.AsyncClient, users: Users, library_amqp_url: str
) -> None:
    teacher_id, teacher = users.new("teacher")
    student_id, student = users.new("student")
    await grant(library_amqp_url, teacher_id, "teacher", seats=1)
    code = (await http.post("/v1/invites", json={"relation": "teacher"}, headers=teacher)).json()
    assert (await accept_once_seated(http, code["code"], student)).status_code == 200
    body = {"student_id": student_id, "piece_id": TWINKLE}

    for due in ("2026-05-01", "2026-05-01T18:00:00", "2026-05-01 18:00"):
        r = await http.post("/v1/assignments", json={**body, "due_at": due}, headers=teacher)
        assert r.status_code == 422, (due, r.text)
        (problem,) = r.json()["detail"]
        assert problem["loc"] == ["body", "due_at"]
        assert "UTC offset" in problem["msg"], problem
    r = await http.post(
        "/v1/assignments", json={**body, "due_at": "9999-12-31T23:00:00-14:00"}, headers=teacher
    )
    assert r.status_code == 422
    assert "years 1-9999" in r.text
    assert (await http.get("/v1/me/assignments", headers=student)).json() == []

    r = await http.post(
        "/v1/assignments", json={**body, "due_at": "2026-05-01T18:00:00+02:00"}, headers=teacher
    )
    assert r.status_code == 201, r.text
    due = datetime.fromisoformat(r.json()["due_at"])
    assert due == datetime(2026, 5, 1, 16, 0, tzinfo=UTC)
    assert due.utcoffset() == timedelta(0)
    (mine,) = (await http.get("/v1/me/assignments", headers=student)).json()
    assert datetime.fromisoformat(mine["due_at"]) == due


async def test_a_score_version_past_any_real_one_is_a_422(
    http: httpx.AsyncClient, users: Users
) -> None:
    _, learner = users.new("student")
    for version in ("99999999999999999999", "9223372036854775808", "1000001", "0"):
        r = await http.get(
            f"/v1/pieces/{TWINKLE}/score", params={"version": version}, headers=learner
        )
        assert r.status_code == 422, (version, r.text)
    r = await http.get(
        f"/v1/pieces/{TWINKLE}/score", params={"version": 1_000_000}, headers=learner
    )
    assert r.status_code == 404
    assert r.json()["error"] == "version_not_found"
    r = await http.get(f"/v1/pieces/{TWINKLE}/score", params={"version": 1}, headers=learner)
    assert r.status_code == 200


async def test_a_damaged_report_draws_what_is_valid_or_answers_409(
    http: httpx.AsyncClient, users: Users, library_amqp_url: str
) -> None:
    learner_id, learner = users.new("student")
    report = take("twinkle-theme", 4)
    damaged = copy.deepcopy(report)
    damaged.pop("performance", None)  # the rows alone are drawn from
    notes = damaged["notes"]
    notes[0]["pitch"] = "high"
    notes[1]["kind"] = "bogus"
    notes[2]["onset_s"] = 1e300
    notes[3]["expected_pitch"] = 100_000
    notes[4]["velocity"] = [1, 2]
    damaged["bars"][0]["start_s"] = "soon"
    hopeless = copy.deepcopy(report)
    hopeless["notes"] = [{"kind": "correct", "pitch": "x"}, "not a row", 7]
    hopeless["performance"] = {"format": "nonsense"}
    hopeless["bars"] = {"not": "a list"}
    now = datetime.now(UTC)
    partly, wholly = (
        scored(learner_id, TWINKLE, damaged, now),
        scored(learner_id, TWINKLE, hopeless, now),
    )
    await play(http, library_amqp_url, learner, [partly, wholly])

    r = await http.get(f"/v1/me/performances/{partly.performance_id}/roll.svg", headers=learner)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    drawn = r.text.count("</rect>")
    assert 0 < drawn < 2 * len(notes)
    assert "bogus" not in r.text
    r = await http.get(f"/v1/me/performances/{wholly.performance_id}/roll.svg", headers=learner)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "report_unrenderable"
    assert "cannot be rendered" in r.json()["detail"]

    r = await http.get(
        f"/v1/me/performances/{partly.performance_id}/performance.mid", headers=learner
    )
    assert r.status_code == 200
    midi = mido.MidiFile(file=io.BytesIO(r.content))
    played = [n for n in notes if n["perf_id"]]
    note_ons = [m for m in midi.tracks[0] if m.type == "note_on"]
    assert 0 < len(note_ons) < len(played)  # the unusable notes are left out
    r = await http.get(
        f"/v1/me/performances/{wholly.performance_id}/performance.mid", headers=learner
    )
    assert r.status_code == 200
    assert not [
        m for m in mido.MidiFile(file=io.BytesIO(r.content)).tracks[0] if m.type == "note_on"
    ]
