"""The live protocol on the wire, against the service as a process: raw MIDI in binary frames
judged as their JSON twins are, pause and continue taking the paused stretch out of the
learner's time, and the server's clock sending `missed` once calibrated, for the notes the
engine's own session finds; a paused session whose connection only pings is not taken for
abandoned; the upgrade request's X-Request-ID on the session's logs and events."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
import yaml
from pymongo import AsyncMongoClient
from sonata_engine import LiveSession, SessionOptions, load_score
from sonata_scoring.domain.protocol import encode_binary
from sonata_testing import JwksServer, ServiceProcess, SigningKey

sys.path.insert(0, str(Path(__file__).parent))

from scoring_live_support import (
    VIENNA,
    connect,
    note_messages,
    premium_learner,
    recv,
    take_notes,
)

pytestmark = pytest.mark.integration
KEY = SigningKey()
ASYNCAPI = yaml.safe_load((Path(__file__).parents[2] / "asyncapi.yaml").read_text())


@pytest.fixture(scope="module")
def database() -> str:
    return f"scoring_wire_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def scoring(
    mongo_url: str, amqp_url: str, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    with JwksServer([KEY.jwk]) as jwks:
        env = {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": database,
            "AMQP_URL": amqp_url,
            "AUTH_JWKS_URL": jwks.url,
            "WS_POSITION_INTERVAL_S": "0.1",
            "SESSION_ABANDON_AFTER_S": "2",
            "SESSION_SWEEP_INTERVAL_S": "0.25",
        }
        service = ServiceProcess(
            "ai-scoring", "sonata_scoring.main:create_app", env,
            log_dir=tmp_path_factory.mktemp("scoring-wire"),
        )  # fmt: skip
        service.start()
        try:
            yield service
        finally:
            service.stop()


@pytest.fixture(scope="module")
async def learner(
    scoring: ServiceProcess, amqp_url: str, mongo_url: str, database: str
) -> tuple[str, str]:
    return await premium_learner(KEY, amqp_url, mongo_url, database)


async def started(ws: Any, piece_id: str) -> str:
    await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": piece_id}))
    return str((await recv(ws, "started"))["session_id"])


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def shifted(notes: list[Any], by: float) -> list[dict[str, Any]]:
    """The notes played `by` seconds later."""
    return [
        {"pitch": int(n["pitch"]), "onset_s": float(n["onset_s"]) + by,
         "offset_s": float(n["offset_s"]) + by}
        for n in notes
    ]  # fmt: skip


async def answer(ws: Any) -> dict[str, Any]:
    """The next message that is not an ack (acks follow the group commit, at any moment)."""
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg["type"] != "ack":
            return msg


async def judged_json(
    port: int, token: str, piece_id: str, notes: list[dict[str, Any]]
) -> list[Any]:
    """The judgements of `notes` sent as JSON, one message per note, in a session of its own."""
    out = []
    async with connect(port, token) as ws:
        await started(ws, piece_id)
        for seq, message in enumerate(note_messages(1, notes), start=1):
            await ws.send(message)
            out.append((await recv(ws, "judged", seq=seq))["judgements"])
    return out


async def test_raw_midi_in_binary_frames_is_judged_as_the_same_notes_in_json(
    scoring: ServiceProcess, learner: tuple[str, str]
) -> None:
    token, piece_id = learner
    notes = take_notes(12)
    expected = await judged_json(scoring.port, token, piece_id, notes)
    async with connect(scoring.port, token) as ws:
        await started(ws, piece_id)
        got = []
        for seq, n in enumerate(notes, start=1):
            pitch = int(n["pitch"])
            # note-on, then its release as a note-on of velocity 0 in running status
            frame = encode_binary(seq, [(float(n["onset_s"]), bytes([0x90, pitch, 70])),
                                        (float(n["offset_s"]), bytes([pitch, 0]))])  # fmt: skip
            await ws.send(frame)
            got.append((await recv(ws, "judged", seq=seq))["judgements"])
        # bytes that are no note (an undefined status) are judged as nothing; the session goes on
        await ws.send(encode_binary(13, [(99.0, bytes([0xF4]))]))
        nothing = await answer(ws)
        assert (nothing["type"], nothing["seq"], nothing["judgements"]) == ("judged", 13, [])
        await ws.send(b"\x07\x01\x00\x00\x00\x0e")  # a binary frame of an unknown version
        error = await answer(ws)
        assert (error["type"], error["code"]) == ("error", "malformed")
    assert got == expected
    assert sum(j["kind"] == "correct" for js in got for j in js) >= 8


async def test_pause_and_continue_take_the_paused_stretch_out_of_the_learners_time(
    scoring: ServiceProcess, learner: tuple[str, str]
) -> None:
    token, piece_id = learner
    notes = take_notes(10)
    expected = await judged_json(scoring.port, token, piece_id, notes)
    paused_s = 30.0
    later = shifted(notes[5:], paused_s)
    async with connect(scoring.port, token) as ws:
        await started(ws, piece_id)
        got = []
        for seq, message in enumerate(note_messages(1, notes[:5]), start=1):
            await ws.send(message)
            got.append((await recv(ws, "judged", seq=seq))["judgements"])
        pause_t = float(notes[4]["offset_s"]) + 0.01
        await ws.send(json.dumps({"type": "pause", "seq": 6, "t": pause_t}))
        await recv(ws, "paused", seq=6)
        await ws.send(note_messages(7, notes[5:6])[0])  # played while paused: refused
        error = await answer(ws)
        assert (error["type"], error["code"], error["seq"]) == ("error", "paused", 7)
        await ws.send(json.dumps({"type": "continue", "seq": 8, "t": pause_t + paused_s}))
        await recv(ws, "continued", seq=8)
        for seq, message in enumerate(note_messages(9, later), start=9):
            await ws.send(message)
            got.append((await recv(ws, "judged", seq=seq))["judgements"])
    # the same timings as without the 30 s pause (to the microsecond: 30 s more and back again
    # is not exact in floating point)
    assert rounded(got) == rounded(expected)


def skipping_ahead(score: Any, notes: list[Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """A take that skips a few notes and plays on quickly, so the notes skipped are proven
    missed only by the clock running on after the last note (not by a later note): the events,
    and the score ids the engine itself then calls missed."""
    for k in range(4, 30):
        for skip in (1, 2, 3, 4, 6):
            t0 = float(notes[k]["onset_s"])
            take = [(float(n["onset_s"]), float(n["offset_s"]), int(n["pitch"])) for n in notes[:k]]
            take += [(t0 + 0.04 * i, t0 + 0.04 * i + 0.05, int(notes[k + skip + i]["pitch"]))
                     for i in range(4)]  # fmt: skip
            events = sorted(
                [{"t": on, "kind": "on", "pitch": p, "velocity": 70} for on, _, p in take]
                + [{"t": off, "kind": "off", "pitch": p} for _, off, p in take],
                key=lambda e: e["t"],
            )
            engine = LiveSession(score, SessionOptions())
            for e in events:
                if e["kind"] == "on":
                    engine.note_on(e["t"], e["pitch"], e["velocity"])
                else:
                    engine.note_off(e["t"], e["pitch"])
            end = events[-1]["t"]
            missed = {j.score_id for dt in range(1, 11) for j in engine.advance(end + dt / 10)}
            if missed:
                return events, {m for m in missed if m is not None}
    raise AssertionError("no take of this piece leaves notes for the clock to call missed")


async def test_once_calibrated_the_servers_clock_sends_the_missed_notes_the_engine_finds(
    scoring: ServiceProcess, learner: tuple[str, str]
) -> None:
    token, piece_id = learner
    score = load_score(VIENNA / "musicxml" / "Schubert_D783_no15.musicxml")
    events, missed_by_clock = skipping_ahead(score, take_notes(60))
    device_zero = time.time() - 1000.0  # the device's clock reads 1000 s: up for that long

    def device_now() -> float:
        return time.time() - device_zero

    async with connect(scoring.port, token) as ws:
        await started(ws, piece_id)
        await ws.send(json.dumps({"type": "calibrate", "seq": 1}))
        for _ in range(5):
            probe = await recv(ws, "clock")
            await ws.send(json.dumps({"type": "clock", "seq": 1, "probe": probe["probe"],
                                      "client_time": device_now()}))  # fmt: skip
        calibrated = await recv(ws, "calibrated")
        assert calibrated["samples"] == 5
        assert abs(calibrated["offset_ms"] + device_zero * 1000) < 50  # device minus server
        # the take as if its last note was released just now, in one message
        shift = device_now() - events[-1]["t"]
        now_events = [{**e, "t": e["t"] + shift} for e in events]
        await ws.send(json.dumps({"type": "notes", "seq": 2, "events": now_events}))
        judged = await recv(ws, "judged", seq=2)
        assert not missed_by_clock & {j["score_id"] for j in judged["judgements"]}
        told: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while {j["score_id"] for j in told} != missed_by_clock and time.monotonic() < deadline:
            msg = await answer(ws)
            # the position only moves with a judged note: the clock repeats nothing it said
            assert msg["type"] == "missed", msg
            assert msg["seq"] == 2
            told += msg["judgements"]
        assert {j["score_id"] for j in told} == missed_by_clock
        assert {j["kind"] for j in told} == {"missed"}
        assert all(j["expected_pitch"] is not None and j["pitch"] is None for j in told)


async def test_a_paused_session_that_only_pings_is_not_taken_for_abandoned(
    scoring: ServiceProcess, learner: tuple[str, str], mongo_url: str, database: str
) -> None:
    token, piece_id = learner
    notes = take_notes(8)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    sessions = client[database].live_sessions

    async def status(session_id: str) -> str:
        return str((await sessions.find_one({"session_id": session_id}) or {})["status"])

    async def ping(ws: Any) -> None:
        await ws.send(json.dumps({"type": "ping", "seq": 0}))
        await recv(ws, "pong")
        await asyncio.sleep(0.2)

    try:
        async with connect(scoring.port, token) as pinging, connect(scoring.port, token) as silent:
            kept, left = await started(pinging, piece_id), await started(silent, piece_id)
            for ws in (pinging, silent):
                for message in note_messages(1, notes[:3]):
                    await ws.send(message)
                await recv(ws, "ack", seq=3)
            await pinging.send(json.dumps({"type": "pause", "seq": 4, "t": 5.0}))
            await recv(pinging, "paused", seq=4)
            # SESSION_ABANDON_AFTER_S is 2 s: the silent one is finished by the sweeper, its
            # connection still open; the paused one, pinging, is not, then or 2.5 s later
            deadline = time.monotonic() + 10
            while await status(left) == "live":
                assert time.monotonic() < deadline, "the sweeper never finished the silent one"
                await ping(pinging)
            for _ in range(12):
                await ping(pinging)
            assert await status(kept) == "live"
            await pinging.send(json.dumps({"type": "continue", "seq": 5, "t": 6.0}))
            await recv(pinging, "continued", seq=5)
            for seq, message in enumerate(note_messages(6, shifted(notes[3:], 1.0)), start=6):
                await pinging.send(message)
                await recv(pinging, "judged", seq=seq)
            await pinging.send(json.dumps({"type": "finish", "seq": 11}))
            performance_id = (await recv(pinging, "finished"))["performance_id"]
        performance = await client[database].performances.find_one(
            {"performance_id": performance_id}
        )
        assert performance is not None
        assert performance["finished_by"] == "learner"
    finally:
        await client.close()


async def test_the_upgrade_requests_id_is_on_the_sessions_events_and_logs(
    scoring: ServiceProcess, learner: tuple[str, str], mongo_url: str, database: str
) -> None:
    token, piece_id = learner
    played, left = f"wire-{uuid.uuid4().hex}", f"wire-{uuid.uuid4().hex}"

    def connect_as(request_id: str) -> Any:
        return websockets.connect(
            f"ws://127.0.0.1:{scoring.port}/ws/v1/sessions",
            subprotocols=["sonata.v1", f"bearer.{token}"],  # type: ignore[list-item]
            additional_headers={"X-Request-ID": request_id},
        )

    async with connect_as(played) as ws:
        session_id = await started(ws, piece_id)
        for seq, message in enumerate(note_messages(1, take_notes(4)), start=1):
            await ws.send(message)
            await recv(ws, "judged", seq=seq)
        await ws.send(json.dumps({"type": "finish", "seq": 5}))
        performance_id = (await recv(ws, "finished"))["performance_id"]
    async with connect_as(played) as ws:  # a finished session cannot be resumed: it says where
        await ws.send(json.dumps({"type": "resume", "seq": 0, "session_id": session_id,
                                  "last_acked_seq": 5}))  # fmt: skip
        refused = await answer(ws)
    assert (refused["type"], refused["code"]) == ("refused", "session_finished")
    assert refused["performance_id"] == performance_id
    documented = ASYNCAPI["components"]["messages"]["refused"]["payload"]["properties"]
    assert set(refused) <= set(documented)
    async with connect_as(left) as ws:  # dropped, and finished by the sweeper later
        abandoned_id = await started(ws, piece_id)
        for message in note_messages(1, take_notes(3)):
            await ws.send(message)
        await recv(ws, "ack", seq=3)

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    outbox = client[database].outbox

    async def events(request_id: str) -> list[tuple[str, str]]:
        rows = outbox.find({"correlation_id": request_id}, {"name": 1, "body": 1})
        return sorted([(r["name"], json.loads(r["body"])["session_id"]) async for r in rows])

    try:
        assert await events(played) == [
            ("ai_scoring.performance_scored.v1", session_id),
            ("ai_scoring.session_started.v1", session_id),
        ]
        deadline = time.monotonic() + 10
        while len(await events(left)) < 2:
            assert time.monotonic() < deadline, "the abandoned session was never finished"
            await asyncio.sleep(0.2)
        assert await events(left) == [
            ("ai_scoring.performance_scored.v1", abandoned_id),
            ("ai_scoring.session_started.v1", abandoned_id),
        ]
    finally:
        await client.close()
    lines = [json.loads(line) for line in scoring.log_path.read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    mine = [line["message"] for line in lines if line.get("correlation_id") == played]
    assert f"live session {session_id} started on piece {piece_id}" in mine
    assert any(m.startswith(f"live session {session_id} finished: performance") for m in mine)
    swept = [line["message"] for line in lines if line.get("correlation_id") == left]
    assert f"finished abandoned session {abandoned_id}" in swept
