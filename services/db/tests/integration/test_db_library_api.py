"""db as a real process over HTTP: the starting catalogue, uploads (and their refusals),
visibility of private pieces, edits going out as events, and search with paging."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from sonata_engine import score_from_dict

sys.path.insert(0, str(Path(__file__).parent))

from db_api_support import Events, Users, accept_once_seated, grant
from db_takes import catalogue_bytes

pytestmark = pytest.mark.integration

MIDI_HEADER_ONLY = b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x01\x00\x90<"


def upload(
    http: httpx.AsyncClient, headers: dict[str, str], data: bytes, name: str, **form: Any
) -> Any:
    return http.post("/v1/pieces", headers=headers, files={"file": (name, data)}, data={**form})


async def test_the_starting_catalogue_is_public_graded_and_announced(
    http: httpx.AsyncClient, users: Users, events: Events
) -> None:
    _, learner = users.new("student")
    r = await http.get("/v1/pieces", params={"scope": "public", "page_size": 50}, headers=learner)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 5
    by_id = {p["piece_id"]: p for p in body["items"]}
    minuet = by_id["catalogue-minuet-in-g"]
    assert (minuet["composer"], minuet["level"], minuet["time_signature"]) == (
        "Christian Petzold",
        2,
        "3/4",
    )
    assert minuet["sections"] == [
        {"name": "A", "first_bar": 1, "last_bar": 8},
        {"name": "A'", "first_bar": 9, "last_bar": 16},
    ]
    assert minuet["hands"] == ["left", "right"]
    assert [p["level"] for p in body["items"]] == sorted(p["level"] for p in body["items"])

    published = await events.wait_for("db.piece_published.v1", piece_id="catalogue-ode-to-joy")
    score = score_from_dict(published["score"])
    assert len(score.notes) > 50
    assert published["visibility"] == "public"
    assert published["owner_id"] is None


async def test_search_filters_and_pages(http: httpx.AsyncClient, users: Users) -> None:
    _, learner = users.new("student")

    async def ids(**params: Any) -> list[str]:
        r = await http.get("/v1/pieces", params={"scope": "public", **params}, headers=learner)
        assert r.status_code == 200, r.text
        return [p["piece_id"] for p in r.json()["items"]]

    assert await ids(q="MINUET") == ["catalogue-minuet-in-g"]
    assert await ids(q="twinkle") == ["catalogue-twinkle-theme"]
    assert await ids(composer="beethoven") == ["catalogue-ode-to-joy"]
    assert await ids(tag="baroque") == ["catalogue-minuet-in-g"]
    assert len(await ids(level=1)) == 3
    assert await ids(min_level=3, max_level=5) == ["catalogue-clementi-op36-1"]
    assert await ids(q="a.*") == []  # the text is matched literally, not as a pattern
    first, second, third = [await ids(page_size=2, page=p) for p in (1, 2, 3)]
    assert len(first) == len(second) == 2
    assert len(third) == 1
    assert not set(first) & set(second)
    r = await http.get("/v1/pieces", params={"page_size": 1000}, headers=learner)
    assert r.status_code == 422


async def test_a_teacher_uploads_a_private_piece_with_given_sections(
    http: httpx.AsyncClient, users: Users, events: Events
) -> None:
    teacher_id, teacher = users.new("teacher")
    sections = (
        '[{"name": "intro", "first_bar": 1, "last_bar": 4},'
        ' {"name": "verse", "first_bar": 5, "last_bar": 12}]'
    )
    r = await upload(
        http,
        teacher,
        catalogue_bytes("twinkle-theme"),
        "twinkle.musicxml",
        title="Twinkle for Mia",
        level="1",
        tags="Folk, homework",
        key="C major",
        sections=sections,
    )
    assert r.status_code == 201, r.text
    piece = r.json()
    assert piece["owner_id"] == teacher_id
    assert piece["visibility"] == "private"
    assert piece["title"] == "Twinkle for Mia"
    assert piece["composer"] == "Traditional"
    assert piece["tags"] == ["folk", "homework"]
    assert [s["name"] for s in piece["sections"]] == ["intro", "verse"]
    assert (piece["bars"], piece["first_bar"], piece["last_bar"]) == (12, 1, 12)
    assert 20 < piece["duration_s"] < 40
    event = await events.wait_for("db.piece_published.v1", piece_id=piece["piece_id"])
    assert event["version"] == 1
    assert event["owner_id"] == teacher_id

    r = await http.get(f"/v1/pieces/{piece['piece_id']}/score", headers=teacher)
    assert r.status_code == 200
    assert len(score_from_dict(r.json()).notes) == 80

    # Edits make a new version, announced again.
    r = await http.patch(
        f"/v1/pieces/{piece['piece_id']}",
        json={"level": 2, "sections": [{"name": "all", "first_bar": 1, "last_bar": 12}]},
        headers=teacher,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["level"]) == (2, 2)
    event = await events.wait_for("db.piece_published.v1", piece_id=piece["piece_id"], version=2)
    assert event["level"] == 2
    assert score_from_dict(event["score"]).notes.size == 80
    r = await http.patch(
        f"/v1/pieces/{piece['piece_id']}",
        json={"sections": [{"name": "coda", "first_bar": 10, "last_bar": 30}]},
        headers=teacher,
    )
    assert r.status_code == 422
    assert "outside the piece's bars 1-12" in r.json()["detail"]


BAD_UPLOADS = [
    (b"", "x.musicxml", "empty"),
    (b"%PDF-1.7 not music", "score.pdf", "neither MusicXML"),
    (b"<html><body>hello</body></html>", "page.xml", "cannot be read"),
    (b"<score-partwise><part-list>", "cut.musicxml", "cannot be read"),
    (b"PK\x03\x04broken zip", "piece.mxl", "not a valid zip"),
    (MIDI_HEADER_ONLY, "take.mid", "cannot be read"),
]


@pytest.mark.parametrize(("data", "name", "reason"), BAD_UPLOADS, ids=[b[2] for b in BAD_UPLOADS])
async def test_a_bad_file_is_refused_with_its_reason_and_nothing_is_stored(
    http: httpx.AsyncClient, users: Users, data: bytes, name: str, reason: str
) -> None:
    _, teacher = users.new("teacher")
    r = await upload(http, teacher, data, name)
    assert r.status_code == 422, r.text
    assert reason in r.json()["detail"], r.json()
    r = await http.get("/v1/pieces", params={"scope": "mine"}, headers=teacher)
    assert r.json()["total"] == 0


async def test_limits_roles_and_sections_are_checked_before_anything_is_stored(
    http: httpx.AsyncClient, users: Users
) -> None:
    _, teacher = users.new("teacher")
    _, learner = users.new("student")
    _, admin = users.new("admin")
    big = catalogue_bytes("minuet-in-g") + b" " * 200_001
    r = await upload(http, teacher, big, "big.musicxml")
    assert r.status_code == 422
    assert "larger than 200000 bytes" in r.json()["detail"]
    r = await upload(http, teacher, catalogue_bytes("minuet-in-g"), "m.musicxml", sections="[1]")
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_sections"
    r = await upload(http, learner, catalogue_bytes("minuet-in-g"), "m.musicxml")
    assert r.status_code == 403
    r = await upload(
        http, teacher, catalogue_bytes("minuet-in-g"), "m.musicxml", visibility="public"
    )
    assert r.status_code == 403
    r = await http.post("/v1/pieces", files={"file": ("m.musicxml", b"<x/>")})
    assert r.status_code == 401
    r = await http.get("/v1/pieces", params={"scope": "mine"}, headers=teacher)
    assert r.json()["total"] == 0
    r = await upload(
        http,
        admin,
        catalogue_bytes("c-major-scale"),
        "drill.musicxml",
        title="Scale drill",
        visibility="public",
        level="10",
    )
    assert r.status_code == 201
    assert r.json()["visibility"] == "public"


async def test_private_pieces_are_seen_by_their_owner_and_the_owners_students_only(
    http: httpx.AsyncClient,
    users: Users,
    mongo_url: str,
    events: Events,
    library_db: str,
    library_amqp_url: str,
) -> None:
    owner_id, owner = users.new("teacher")
    await grant(library_amqp_url, owner_id, "teacher", seats=5)
    _, other_teacher = users.new("teacher")
    _student_id, student = users.new("student")
    r = await upload(http, owner, catalogue_bytes("ode-to-joy"), "ode.musicxml", title="Ode (mine)")
    piece_id = r.json()["piece_id"]
    for outsider in (other_teacher, student):
        assert (await http.get(f"/v1/pieces/{piece_id}", headers=outsider)).status_code == 404
        assert (await http.get(f"/v1/pieces/{piece_id}/score", headers=outsider)).status_code == 404
        listed = (await http.get("/v1/pieces", params={"q": "mine"}, headers=outsider)).json()
        assert listed["total"] == 0
    r = await http.patch(f"/v1/pieces/{piece_id}", json={"level": 3}, headers=other_teacher)
    assert r.status_code == 404
    r = await http.delete(f"/v1/pieces/{piece_id}", headers=other_teacher)
    assert r.status_code == 404

    invite = (await http.post("/v1/invites", json={"relation": "teacher"}, headers=owner)).json()
    assert invite["link"].endswith(invite["code"])
    r = await accept_once_seated(http, invite["code"], student)
    assert r.status_code == 200
    assert r.json()["guardian_id"] == owner_id
    assert (await http.get(f"/v1/pieces/{piece_id}", headers=student)).status_code == 200
    listed = (await http.get("/v1/pieces", params={"q": "mine"}, headers=student)).json()
    assert [p["piece_id"] for p in listed["items"]] == [piece_id]
    r = await http.post(f"/v1/invites/{invite['code']}/accept", headers=student)
    assert r.status_code == 404  # an invite is good once

    r = await http.delete(f"/v1/pieces/{piece_id}", headers=owner)
    assert r.status_code == 204
    await events.wait_for("db.piece_withdrawn.v1", piece_id=piece_id)
    assert (await http.get(f"/v1/pieces/{piece_id}", headers=owner)).status_code == 404
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        assert await client[library_db].pieces.count_documents({"piece_id": piece_id}) == 0
    finally:
        await client.close()
