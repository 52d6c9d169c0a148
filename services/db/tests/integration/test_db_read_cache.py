"""db keeps rendered read answers (conftest sets them to never expire): each write shows on the
very next read, ETags let a client revalidate, and nobody gets another caller's kept answer."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sonata_testing import eventually, publish_events

sys.path.insert(0, str(Path(__file__).parent))

from db_api_support import Events, Users, accept_once_seated, grant
from db_takes import catalogue_bytes, scored, take

pytestmark = pytest.mark.integration

TWINKLE = "catalogue-twinkle-theme"


async def read(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> httpx.Response:
    r = await http.get(path, headers=headers)
    assert r.status_code == 200, r.text
    return r


async def test_a_recorded_performance_shows_on_the_next_read(
    http: httpx.AsyncClient, users: Users, events: Events, library_amqp_url: str
) -> None:
    user_id, me = users.new("student")
    for path in ("/v1/me/performances", "/v1/me/progress", "/v1/me/assignments"):
        await read(http, path, me)
        await read(http, path, me)  # now kept
    assert (await read(http, "/v1/me/progress", me)).json()["pieces"] == []
    take_ = scored(user_id, TWINKLE, take("twinkle-theme", 0), datetime.now(UTC))
    await publish_events(library_amqp_url, [take_])
    # db publishes this once the record has committed: one read after it must show the take.
    await events.wait_for("db.performance_recorded.v1", performance_id=take_.performance_id)
    history = (await read(http, "/v1/me/performances", me)).json()
    assert [p["performance_id"] for p in history["items"]] == [take_.performance_id]
    progress = (await read(http, "/v1/me/progress", me)).json()
    assert progress["pieces"][0]["performances"] == 1
    assert progress["streak_days"] == 1
    one = await read(http, f"/v1/me/performances/{take_.performance_id}", me)
    assert one.json()["overall_score"] == take_.overall_score
    # The summary only on the free plan; the full report once payment says the plan has it.
    assert one.json()["full_report"] is False
    await grant(library_amqp_url, user_id, "premium_monthly")

    async def full() -> bool:
        r = await read(http, f"/v1/me/performances/{take_.performance_id}", me)
        return bool(r.json()["full_report"])

    await eventually(full, "the full report once the plan allows it")


async def test_a_piece_edit_shows_at_once_and_etags_revalidate(
    http: httpx.AsyncClient, users: Users
) -> None:
    _, teacher = users.new("teacher")
    r = await http.post(
        "/v1/pieces",
        headers=teacher,
        files={"file": ("minuet.musicxml", catalogue_bytes("minuet-in-g"))},
        data={"title": "Minuet before"},
    )
    assert r.status_code == 201, r.text
    path = f"/v1/pieces/{r.json()['piece_id']}"
    first = await read(http, path, teacher)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    same = await http.get(path, headers={**teacher, "If-None-Match": etag})
    assert (same.status_code, same.content) == (304, b"")
    assert same.headers["etag"] == etag
    listed = (await read(http, "/v1/pieces?scope=mine", teacher)).json()
    assert [p["title"] for p in listed["items"]] == ["Minuet before"]

    r = await http.patch(path, json={"title": "Minuet after"}, headers=teacher)
    assert r.status_code == 200, r.text
    changed = await http.get(path, headers={**teacher, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["title"] == "Minuet after"
    assert changed.headers["etag"] != etag
    listed = (await read(http, "/v1/pieces?scope=mine", teacher)).json()
    assert [p["title"] for p in listed["items"]] == ["Minuet after"]
    r = await http.delete(path, headers=teacher)
    assert r.status_code == 204
    assert (await http.get(path, headers=teacher)).status_code == 404
    assert (await read(http, "/v1/pieces?scope=mine", teacher)).json()["items"] == []


async def test_a_link_an_assignment_and_a_profile_show_at_once_to_the_right_people_only(
    http: httpx.AsyncClient, users: Users, library_amqp_url: str
) -> None:
    teacher_id, teacher = users.new("teacher")
    student_id, student = users.new("student")
    _, outsider = users.new("student")
    await grant(library_amqp_url, teacher_id, "teacher", seats=1)
    r = await http.post(
        "/v1/pieces",
        headers=teacher,
        files={"file": ("twinkle.musicxml", catalogue_bytes("twinkle-theme"))},
        data={"title": "Studio twinkle"},
    )
    piece_id = r.json()["piece_id"]
    for who in (student, outsider):
        assert (await read(http, "/v1/pieces?q=studio", who)).json()["items"] == []
        assert (await http.get(f"/v1/pieces/{piece_id}", headers=who)).status_code == 404
        assert (await read(http, "/v1/me/assignments", who)).json() == []

    code = (await http.post("/v1/invites", json={"relation": "teacher"}, headers=teacher)).json()
    r = await accept_once_seated(http, code["code"], student)
    assert r.status_code == 200, r.text
    assert (await http.get(f"/v1/pieces/{piece_id}", headers=student)).status_code == 200
    mine = (await read(http, "/v1/pieces?q=studio", student)).json()["items"]
    assert [p["piece_id"] for p in mine] == [piece_id]
    assert (await http.get(f"/v1/pieces/{piece_id}", headers=outsider)).status_code == 404
    assert (await read(http, "/v1/pieces?q=studio", outsider)).json()["items"] == []

    r = await http.post(
        "/v1/assignments",
        json={"student_id": student_id, "piece_id": piece_id, "target_score": 80},
        headers=teacher,
    )
    assert r.status_code == 201, r.text
    (assigned,) = (await read(http, "/v1/me/assignments", student)).json()
    assert assigned["assignment_id"] == r.json()["assignment_id"]
    assert (await read(http, "/v1/me/assignments", outsider)).json() == []

    before = (await read(http, "/v1/me/progress", student)).json()
    r = await http.put(
        "/v1/me/profile",
        json={"timezone": "Asia/Tokyo", "weekly_goal_minutes": 45, "rest_days_per_week": 1},
        headers=student,
    )
    assert r.status_code == 200, r.text
    after = (await read(http, "/v1/me/progress", student)).json()
    assert (after["timezone"], after["weekly_goal_minutes"]) == ("Asia/Tokyo", 45)
    assert before["timezone"] != "Asia/Tokyo"
