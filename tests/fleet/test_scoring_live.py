"""A live practice session across real processes: auth, ai-scoring, db and the nginx gateway.

A learner logs in, starts a session on a Vienna 4x22 piece published as db's event, streams a
performance with injected mistakes over the WebSocket through the gateway, gets the engine's
own judgements back, loses the connection halfway and resumes, finishes, reads the report and
the coach's feedback, and db records the performance from ai-scoring's event.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from pymongo import AsyncMongoClient
from sonata_contracts.db import PiecePublished
from sonata_contracts.payment import EntitlementsChanged, Limits
from sonata_engine import LiveSession, load_performance, load_score, score_from_dict, score_to_dict
from sonata_testing import ServiceProcess, eventually, publish_events
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from auth_fleet_support import (  # noqa: E402
    KEY_ENCRYPTION_SECRET,
    PASSWORD,
    EventTap,
    login,
    signup_verified,
)
from scoring_fleet_support import connect as _connect  # noqa: E402
from scoring_fleet_support import recv as _recv  # noqa: E402
from sonata_local.fleet import start_gateway  # noqa: E402

pytestmark = pytest.mark.fleet

VIENNA = ROOT.parent / "shared" / "eval" / "vienna4x22"
PIECE = VIENNA / "musicxml" / "Schubert_D783_no15.musicxml"
TAKE = VIENNA / "midi" / "Schubert_D783_no15_p01.mid"
ORIGIN = "https://app.sonata.test"
BATCH = 8


class Fleet:
    def __init__(self, auth: ServiceProcess, scoring: ServiceProcess, db: ServiceProcess) -> None:
        self.auth, self.scoring, self.db = auth, scoring, db
        self.gateway_port = 0  # once the gateway runs
        self.piece_id = f"schubert-{uuid.uuid4().hex[:6]}"

    @property
    def ws_gateway(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ws/v1/sessions"

    @property
    def ws_direct(self) -> str:
        return f"ws://127.0.0.1:{self.scoring.port}/ws/v1/sessions"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}/api/ai-scoring"


@pytest.fixture(scope="module")
def fleet(
    mongo_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    if not Path("/usr/sbin/nginx").exists():
        pytest.fail("nginx is not installed: `sudo apt-get install nginx` (or `make install`)")
    auth = ServiceProcess("auth", "sonata_auth.main:create_app", {
        "ENVIRONMENT": "test", "MONGODB_URL": mongo_url, "AMQP_URL": amqp_url,
        "MONGODB_DB": f"auth_{uuid.uuid4().hex[:8]}", "LOG_LEVEL": "WARNING",
        "KEY_ENCRYPTION_SECRET": KEY_ENCRYPTION_SECRET,
    })  # fmt: skip
    common = {"ENVIRONMENT": "test", "MONGODB_URL": mongo_url, "AMQP_URL": amqp_url,
              "AUTH_JWKS_URL": f"{auth.base_url}/.well-known/jwks.json", "LOG_LEVEL": "WARNING",
              "RELAY_POLL_INTERVAL_S": "0.2"}  # fmt: skip
    scoring = ServiceProcess(
        "ai-scoring",
        "sonata_scoring.main:create_app",
        common | {
            "MONGODB_DB": f"scoring_{uuid.uuid4().hex[:8]}",
            "ROOT_PATH": "/api/ai-scoring",
            "FREE_SCORED_SESSIONS_PER_DAY": "1",
            "WS_ALLOWED_ORIGINS": json.dumps([ORIGIN]),
            "WS_AUTH_TIMEOUT_S": "2", "WS_IDLE_TIMEOUT_S": "3",
            "SESSION_ABANDON_AFTER_S": "8", "SESSION_SWEEP_INTERVAL_S": "1",
            "WS_RATE_PER_S": "100", "WS_RATE_BURST": "150", "WS_SEND_BUFFER_BYTES": "262144",
        },
    )  # fmt: skip
    db = ServiceProcess(
        "db", "sonata_db.main:create_app", common | {"MONGODB_DB": f"lib_{uuid.uuid4().hex[:8]}"}
    )
    # three processes starting one after another is most of this module's time
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda p: p.start(timeout=150), (auth, scoring, db)))
    except Exception:
        for proc in (auth, scoring, db):
            proc.stop()  # the ones that did start must not outlive the test
        raise
    running = Fleet(auth, scoring, db)
    routes = {"auth": auth.port, "ai-scoring": scoring.port, "db": db.port}
    try:
        gateway, running.gateway_port = start_gateway(tmp_path_factory.mktemp("gateway"), routes)
    except Exception:
        for proc in (db, scoring, auth):
            proc.stop()
        raise
    try:
        yield running
    finally:
        gateway.terminate()
        gateway.wait(10)
        for proc in (db, scoring, auth):
            proc.stop()
        log = scoring.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]


def _user_id(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


async def _learner(
    fleet: Fleet, amqp_url: str, paid: bool, email: str | None = None
) -> tuple[str, str]:
    email = email or f"learner-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(timeout=10) as http, EventTap(amqp_url) as tap:
        await signup_verified(http, tap, fleet.auth.base_url, email)
        token = (await login(http, fleet.auth.base_url, email))["access_token"]
    user = _user_id(token)
    if paid:
        limits = Limits(
            scored_sessions_per_day=None, coach=True, full_reports=True, teacher_seats=0
        )
        await publish_events(amqp_url, [EntitlementsChanged(
            user_id=user, plan="premium_monthly", limits=limits,
            valid_until=datetime.now(UTC) + timedelta(days=30), version=1, as_of=datetime.now(UTC),
        )])  # fmt: skip
    return token, user


def _take() -> list[dict[str, Any]]:
    """The Vienna take with mistakes: two wrong notes, three dropped, one extra."""
    notes = load_performance(TAKE).notes
    events: list[dict[str, Any]] = []
    for i, n in enumerate(notes):
        if i in (60, 61, 62):
            continue
        pitch = int(n["pitch"]) + (1 if i in (20, 120) else 0)
        on, off = float(n["onset_s"]), float(n["offset_s"])
        events.append({"t": on, "kind": "on", "pitch": pitch, "velocity": int(n["velocity"])})
        events.append({"t": off, "kind": "off", "pitch": pitch})
    events.append({"t": 10.01, "kind": "on", "pitch": 100, "velocity": 70})
    events.append({"t": 10.2, "kind": "off", "pitch": 100})
    events.sort(key=lambda e: (e["t"], e["kind"] == "on"))
    return events


def _engine_judgements(score: dict[str, Any], events: list[dict[str, Any]]) -> list[Any]:
    session = LiveSession(score_from_dict(score))
    out = []
    for e in events:
        if e["kind"] == "on":
            out += [j.to_dict() for j in session.note_on(e["t"], e["pitch"], e["velocity"])]
        else:
            session.note_off(e["t"], e["pitch"])
    return json.loads(json.dumps(out))  # as the wire carries them


@pytest.fixture(scope="module")
def piece(fleet: Fleet, amqp_url: str, mongo_url: str) -> dict[str, Any]:
    score = score_to_dict(load_score(PIECE))

    async def publish() -> None:
        await publish_events(amqp_url, [PiecePublished(
            piece_id=fleet.piece_id, version=1, title="Valses sentimentales no. 15",
            composer="Schubert", level=4, owner_id=None, visibility="public", score=score,
        )])  # fmt: skip
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        dbs = [n for n in await client.list_database_names() if n.startswith("scoring_")]

        async def kept() -> bool:
            for name in dbs:
                if await client[name].pieces.count_documents({"piece_id": fleet.piece_id}):
                    return True
            return False

        await eventually(kept, "ai-scoring to keep the published piece")
        await client.close()

    asyncio.run(publish())
    return score


async def test_live_session_through_the_gateway_with_a_dropped_connection(
    fleet: Fleet, piece: dict[str, Any], amqp_url: str
) -> None:
    token, user = await _learner(fleet, amqp_url, paid=True)
    events = _take()
    expected = _engine_judgements(piece, events)
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    got: dict[int, list[Any]] = {}
    async with EventTap(amqp_url, binding="db.performance_recorded.v1") as tap:
        async with _connect(fleet.ws_gateway, token) as ws:
            assert ws.subprotocol == "sonata.v1"
            await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": fleet.piece_id}))
            session_id = (await _recv(ws, "started"))["session_id"]
            half = len(batches) // 2
            for seq, batch in enumerate(batches[:half], start=1):
                await ws.send(json.dumps({"type": "notes", "seq": seq, "events": batch}))
            while len(got) < half // 2:  # read some answers, then the line drops
                judged = await _recv(ws, "judged")
                got[judged["seq"]] = judged["judgements"]
            ws.transport.abort()
        seen = max(got)
        async with _connect(fleet.ws_gateway, token) as ws:
            await ws.send(json.dumps({
                "type": "resume", "seq": 0, "session_id": session_id, "last_acked_seq": seen,
            }))  # fmt: skip
            resumed = await _recv(ws, "resumed")
            held = resumed["last_acked_seq"]
            assert seen <= held <= half
            for _ in range(held - seen):
                replayed = await _recv(ws, "judged")
                assert replayed["replayed"] is True
                assert replayed["seq"] not in got, "judged twice"
                got[replayed["seq"]] = replayed["judgements"]
            for seq in range(held + 1, len(batches) + 1):
                await ws.send(json.dumps({"type": "notes", "seq": seq, "events": batches[seq - 1]}))
            await ws.send(json.dumps({"type": "finish", "seq": len(batches) + 1}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if msg["type"] == "judged":
                    assert msg["seq"] not in got, "judged twice"
                    got[msg["seq"]] = msg["judgements"]
                elif msg["type"] == "finished":
                    finished = msg
                    break
        assert sorted(got) == list(range(1, len(batches) + 1)), "a message went unanswered"
        live = [j for seq in sorted(got) for j in got[seq]]
        assert live == expected
        kinds = {j["kind"] for j in live}
        assert {"correct", "wrong_pitch", "extra"} <= kinds
        assert finished["overall"] > 0

        performance_id = finished["performance_id"]
        recorded = await tap.wait_for(
            "db.performance_recorded.v1", lambda b: b["performance_id"] == performance_id
        )
        assert recorded["user_id"] == user

    async with httpx.AsyncClient(base_url=fleet.api, timeout=10) as http:
        mine = await http.get(
            f"/v1/performances/{performance_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert mine.status_code == 200, mine.text
        body = mine.json()
        assert body["full_report"] is True
        assert body["report"]["overall"] == finished["overall"]
        missed = {n["score_id"] for n in body["report"]["notes"] if n["kind"] == "missed"}
        assert len(missed) >= 3
        coach = await http.get(
            f"/v1/performances/{performance_id}/coach", headers={"Authorization": f"Bearer {token}"}
        )
        assert coach.status_code == 200, coach.text
        feedback = coach.json()["feedback"]
        top = body["report"]["findings"][0]
        assert feedback["improve"][0]["first_bar"] == top["first_bar"]
        assert feedback["drill"]["first_bar"] == top["first_bar"]
        chat = await http.post(
            "/v1/coach/chat",
            json={"message": "what should I practise this week?"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["source"] == "deterministic"  # no model key in this fleet
        assert f"loop bars {feedback['drill']['first_bar']}-" in chat.json()["answer"]
        other, _ = await _learner(fleet, amqp_url, paid=False)
        no_coach = await http.post(
            "/v1/coach/chat", json={"message": "hi"}, headers={"Authorization": f"Bearer {other}"}
        )
        assert (no_coach.status_code, no_coach.json()["error"]) == (403, "coach_not_in_plan")
        theirs = await http.get(
            f"/v1/performances/{performance_id}", headers={"Authorization": f"Bearer {other}"}
        )
        assert theirs.status_code == 404


async def _close_code(ws: Any, within: float = 10.0) -> int | None:
    """Read until the server closes; the code it closed with."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def _sessions(mongo_url: str) -> int:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        names = [n for n in await client.list_database_names() if n.startswith("scoring_")]
        return sum([await client[n].live_sessions.count_documents({}) for n in names])
    finally:
        await client.close()


async def _refused(url: str, **kw: Any) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, **kw):
            pass
    return refused.value.response.status_code


async def test_no_session_without_a_valid_token_or_from_a_foreign_page(
    fleet: Fleet, amqp_url: str, mongo_url: str
) -> None:
    token, _ = await _learner(fleet, amqp_url, paid=True)
    before = await _sessions(mongo_url)
    start = json.dumps({"type": "start", "seq": 0, "piece_id": fleet.piece_id})
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for url in (fleet.ws_gateway, fleet.ws_direct):
        assert await _refused(url, subprotocols=["sonata.v1", f"bearer.{forged}"]) == 401
        assert await _refused(url, subprotocols=["sonata.v1", "bearer.garbage"]) == 401
        bad_origin = {
            "origin": "https://evil.example",
            "subprotocols": ["sonata.v1", f"bearer.{token}"],
        }
        assert await _refused(url, **bad_origin) == 403
        async with websockets.connect(url) as ws:  # no token: must authenticate first
            await ws.send(start)
            assert await _close_code(ws) == 1008
        async with websockets.connect(url) as ws:  # no token and silence
            assert await _close_code(ws) == 1008
        async with websockets.connect(url) as ws:  # a forged token in the auth message
            await ws.send(json.dumps({"type": "auth", "token": forged}))
            await ws.send(start)
            assert await _close_code(ws) == 1008
    assert await _sessions(mongo_url) == before
    # the right page, and a token in the first message, are welcome
    async with websockets.connect(fleet.ws_gateway, origin=ORIGIN) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await _recv(ws, "authenticated")
        await ws.send(start)
        await _recv(ws, "started")
    assert await _sessions(mongo_url) == before + 1


async def test_limits_close_with_their_codes_and_garbage_gets_an_error(
    fleet: Fleet, amqp_url: str
) -> None:
    token, _ = await _learner(fleet, amqp_url, paid=True)
    async with _connect(fleet.ws_direct, token, max_size=None) as ws:
        await ws.send("x" * 70_000)
        assert await _close_code(ws) == 1009
    async with _connect(fleet.ws_direct, token) as ws:
        for seq in range(400):
            await ws.send(json.dumps({"type": "ping", "seq": seq}))
        assert await _close_code(ws) == 1008
    async with _connect(fleet.ws_direct, token) as ws:
        assert await _close_code(ws) == 1001  # idle past WS_IDLE_TIMEOUT_S
    async with _connect(fleet.ws_gateway, token) as ws:
        await ws.send(b"\xff\x00\x13garbage")
        assert (await _recv_any(ws))["code"] == "malformed"
        await ws.send("{not json")
        assert (await _recv_any(ws))["code"] == "malformed"
        off = {"t": 0.5, "kind": "off", "pitch": 60}
        await ws.send(json.dumps({"type": "notes", "seq": 1, "events": [off]}))
        assert (await _recv_any(ws))["code"] == "no_session"
        await ws.send(json.dumps({"type": "start", "seq": 1, "piece_id": fleet.piece_id}))
        await _recv(ws, "started")
        bad_pitch = {"t": 1.0, "kind": "on", "pitch": 300, "velocity": 60}
        await ws.send(json.dumps({"type": "notes", "seq": 2, "events": [bad_pitch]}))
        assert (await _recv_any(ws))["code"] == "malformed"
        await ws.send(json.dumps({"type": "notes", "seq": 9, "events": [off]}))
        assert (await _recv_any(ws))["code"] == "out_of_order"
        await ws.send(json.dumps({"type": "ping", "seq": 3}))
        assert (await _recv(ws, "pong"))["seq"] == 3  # the session goes on
        await ws.send(json.dumps({"type": "calibrate", "seq": 2}))
        for _ in range(5):  # a device whose clock runs 100 s ahead of the server's
            probe = await _recv(ws, "clock")
            reply = {"type": "clock", "seq": 0, "probe": probe["probe"],
                     "client_time": time.time() + 100.0}  # fmt: skip
            await ws.send(json.dumps(reply))
        calibrated = await _recv(ws, "calibrated")
        assert calibrated["offset_ms"] == pytest.approx(100_000, abs=250)
        assert calibrated["samples"] == 5


async def _recv_any(ws: Any) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg["type"] not in ("ack", "position"):
            return msg


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _closed_with(fleet: Fleet, code: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{fleet.scoring.base_url}/metrics")).text
    prefix = f'sonata_ws_closed_total{{code="{code}"}} '
    return sum(float(ln[len(prefix) :]) for ln in text.splitlines() if ln.startswith(prefix))


def _never_reads(fleet: Fleet, token: str) -> socket.socket:
    """A client that sends ~20 MB worth of extra notes and never reads a byte of the answers;
    its small receive buffer keeps the kernel from soaking them up for it."""
    sock = socket.create_connection(("127.0.0.1", fleet.scoring.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    proto = ClientProtocol(
        parse_uri(fleet.ws_direct), subprotocols=["sonata.v1", f"bearer.{token}"]
    )
    proto.send_request(proto.connect())
    sock.sendall(b"".join(proto.data_to_send()))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head, head
    proto.receive_data(head)

    def send(message: dict[str, Any]) -> None:
        proto.send_text(json.dumps(message).encode())
        sock.sendall(b"".join(proto.data_to_send()))

    send({"type": "start", "seq": 0, "piece_id": fleet.piece_id})
    t = 100.0
    for seq in range(1, 90):
        events = []
        for k in range(500):
            t += 0.01
            events.append({"t": t, "kind": "on", "pitch": 21 + k % 80, "velocity": 64})
        try:
            send({"type": "notes", "seq": seq, "events": events})
        except OSError:
            break  # cut already
        time.sleep(0.02)
    return sock


async def test_a_client_that_never_reads_is_cut_and_memory_stays_bounded(
    fleet: Fleet, amqp_url: str
) -> None:
    token, _ = await _learner(fleet, amqp_url, paid=True)
    assert fleet.scoring.proc is not None
    rss_before = _rss_kb(fleet.scoring.proc.pid)
    cut_before = await _closed_with(fleet, "1008")
    sock = await asyncio.to_thread(_never_reads, fleet, token)
    try:

        async def cut() -> bool:
            return await _closed_with(fleet, "1008") > cut_before

        await eventually(cut, "the server to cut the client that does not read", within=60)
    finally:
        sock.close()
    grown_mb = (_rss_kb(fleet.scoring.proc.pid) - rss_before) / 1024
    assert grown_mb < 80, f"ai-scoring grew by {grown_mb:.0f} MB"
    async with _connect(fleet.ws_direct, token) as ws:  # and it serves the next one
        await ws.send(json.dumps({"type": "ping", "seq": 0}))
        await _recv(ws, "pong")


async def test_free_plan_scores_its_daily_sessions_then_says_what_unlocks_more(
    fleet: Fleet, amqp_url: str
) -> None:
    token, _ = await _learner(fleet, amqp_url, paid=False)
    async with _connect(fleet.ws_gateway, token) as ws:
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": "no-such-piece"}))
        unknown = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (unknown["type"], unknown["code"]) == ("refused", "unknown_piece")
        await ws.send(json.dumps({"type": "start", "seq": 1, "piece_id": fleet.piece_id}))
        await _recv(ws, "started")
    async with _connect(fleet.ws_gateway, token) as ws:
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": fleet.piece_id}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert (refused["type"], refused["code"]) == ("refused", "daily_limit")
    assert "paid plan" in refused["unlock"]


async def test_the_bridge_replays_a_midi_file_through_the_gateway(
    fleet: Fleet, amqp_url: str
) -> None:
    email = f"bridge-{uuid.uuid4().hex[:8]}@example.com"
    await _learner(fleet, amqp_url, paid=True, email=email)
    bridge = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sonata_scoring.entrypoints.bridge",
        "--gateway", f"http://127.0.0.1:{fleet.gateway_port}", "--email", email,
        "--piece", fleet.piece_id, "--midi", str(TAKE), "--speed", "25",
        env={**os.environ, "SONATA_PASSWORD": PASSWORD},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(bridge.communicate(), 120)
    text = out.decode()
    assert bridge.returncode == 0, err.decode()[-2000:]
    assert text.count(" correct ") > 200  # one line per judged note, live
    assert "\noverall " in text
    assert "\nperformance " in text


async def test_ctrl_c_on_the_bridge_scores_what_was_played_without_a_traceback(
    fleet: Fleet, piece: dict[str, Any], amqp_url: str
) -> None:
    email = f"bridge-{uuid.uuid4().hex[:8]}@example.com"
    await _learner(fleet, amqp_url, paid=True, email=email)
    bridge = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sonata_scoring.entrypoints.bridge",
        "--gateway", f"http://127.0.0.1:{fleet.gateway_port}", "--email", email,
        "--piece", fleet.piece_id, "--midi", str(TAKE), "--speed", "1",
        env={**os.environ, "SONATA_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert bridge.stdout is not None
    judged = 0
    while judged < 5:  # a few notes into the take, the learner presses Ctrl-C
        line = (await asyncio.wait_for(bridge.stdout.readline(), 30)).decode()
        assert line, "the bridge stopped before judging anything"
        judged += " correct " in line
    bridge.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(bridge.communicate(), 60)
    assert bridge.returncode == 0, err.decode()[-2000:]
    assert "Traceback" not in err.decode()
    assert "stopped: scoring what was played" in err.decode()
    assert "\noverall " in out.decode()


async def test_an_abandoned_session_is_finished_on_its_own(fleet: Fleet, amqp_url: str) -> None:
    token, user = await _learner(fleet, amqp_url, paid=True)
    events = _take()[:120]
    async with EventTap(amqp_url, binding="ai_scoring.performance_scored.v1") as tap:
        async with _connect(fleet.ws_direct, token) as ws:
            await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": fleet.piece_id}))
            session_id = (await _recv(ws, "started"))["session_id"]
            await ws.send(json.dumps({"type": "notes", "seq": 1, "events": events}))
            await _recv(ws, "judged")
            await _recv(ws, "ack")
        scored = await tap.wait_for(
            "ai_scoring.performance_scored.v1",
            lambda b: b["session_id"] == session_id,
            within_s=40,
        )
    assert scored["user_id"] == user
    played = [n for n in scored["report"]["notes"] if n["perf_id"]]
    assert len(played) == sum(e["kind"] == "on" for e in events)  # every note kept
    async with httpx.AsyncClient(base_url=fleet.api, timeout=10) as http:
        kept = await http.get(
            f"/v1/performances/{scored['performance_id']}",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert kept.json()["finished_by"] == "abandoned"
