"""What fleet tests share to play through ai-scoring: the process, the `sonata.v1` WebSocket
(connect, read an answer of a kind), a take made from a score's own notes, and one whole
session from `start` to `finished`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Collection, Mapping
from typing import Any

import websockets
from sonata_engine import score_from_dict
from sonata_testing import ServiceProcess


def start_scoring(
    mongo_url: str, amqp_url: str, auth: ServiceProcess, extra_env: Mapping[str, str] | None = None
) -> ServiceProcess:
    """ai-scoring trusting ``auth``'s tokens; not started yet (``.start()`` it)."""
    env = {
        "ENVIRONMENT": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": f"scoring_{uuid.uuid4().hex[:8]}",
        "AMQP_URL": amqp_url,
        "AUTH_JWKS_URL": f"{auth.base_url}/.well-known/jwks.json",
        "LOG_LEVEL": "WARNING",
        "RELAY_POLL_INTERVAL_S": "0.2",
        **dict(extra_env or {}),
    }
    return ServiceProcess("ai-scoring", "sonata_scoring.main:create_app", env)


def ws_url(scoring: ServiceProcess) -> str:
    return f"ws://127.0.0.1:{scoring.port}/ws/v1/sessions"


def connect(url: str, token: str, **kw: Any) -> Any:
    """A connection authenticated in the handshake (the token as a subprotocol)."""
    return websockets.connect(url, subprotocols=["sonata.v1", f"bearer.{token}"], **kw)


async def recv(ws: Any, kind: str, within: float = 15.0) -> dict[str, Any]:
    """The next message of ``kind``, skipping others; an error or refusal fails."""
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
        if msg["type"] == kind:
            return msg
        if msg["type"] in ("error", "refused"):
            raise AssertionError(msg)


def take_of(
    score: dict[str, Any],
    *,
    first_bar: int | None = None,
    last_bar: int | None = None,
    wrong: Collection[int] = (),
    dropped: Collection[int] = (),
) -> list[dict[str, Any]]:
    """Note events playing the score's notes (of the chosen bars) at its printed tempo: the
    k-th note a semitone sharp if k is in ``wrong``, left out if in ``dropped``."""
    notes = score_from_dict(score).notes
    events: list[dict[str, Any]] = []
    k = -1
    for note in notes:
        bar = int(note["measure"])
        if (first_bar is not None and bar < first_bar) or (last_bar is not None and bar > last_bar):
            continue
        k += 1
        if k in dropped:
            continue
        pitch = int(note["pitch"]) + (1 if k in wrong else 0)
        on = 0.5 + float(note["onset_s"])
        off = on + max(0.05, float(note["duration_s"]) * 0.9)
        velocity = int(note["velocity_mark"]) or 64
        events.append({"t": on, "kind": "on", "pitch": pitch, "velocity": velocity})
        events.append({"t": off, "kind": "off", "pitch": pitch})
    events.sort(key=lambda e: (e["t"], e["kind"] == "on"))
    return events


async def play_session(
    url: str,
    token: str,
    piece_id: str,
    events: list[dict[str, Any]],
    options: Mapping[str, Any] | None = None,
    *,
    batch: int = 32,
    wait_for_piece_s: float = 0.0,
) -> dict[str, Any]:
    """Start a session, stream ``events`` in ``notes`` messages, finish; the `finished`
    message. With ``wait_for_piece_s``, a start refused as `unknown_piece` (ai-scoring has not
    received the piece yet) is tried again until then."""
    async with connect(url, token) as ws:
        seq = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_for_piece_s
        while True:
            await ws.send(
                json.dumps({"type": "start", "seq": seq, "piece_id": piece_id, **(options or {})})
            )
            msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
            while msg["type"] not in ("started", "refused", "error"):
                msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if msg["type"] == "started":
                break
            if msg.get("code") != "unknown_piece" or loop.time() > deadline:
                raise AssertionError(msg)
            seq += 1
            await asyncio.sleep(0.25)
        batches = [events[i : i + batch] for i in range(0, len(events), batch)]
        for batch_events in batches:
            seq += 1
            await ws.send(json.dumps({"type": "notes", "seq": seq, "events": batch_events}))
            await recv(ws, "judged")
        await ws.send(json.dumps({"type": "finish", "seq": seq + 1}))
        return await recv(ws, "finished", within=30)
