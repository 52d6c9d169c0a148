"""What the live-session tests share: a premium learner and the Schubert piece made known to
ai-scoring through the events it consumes, the take's notes as messages, and reading frames."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import websockets
from pymongo import AsyncMongoClient
from sonata_contracts.db import PiecePublished
from sonata_contracts.payment import EntitlementsChanged, Limits
from sonata_engine import load_performance, load_score, score_to_dict
from sonata_testing import SigningKey, TokenFactory, eventually, publish_events

VIENNA = Path(__file__).resolve().parents[5] / "shared" / "eval" / "vienna4x22"
PREMIUM = Limits(scored_sessions_per_day=None, coach=True, full_reports=True, teacher_seats=0)


async def premium_learner(
    key: SigningKey, amqp_url: str, mongo_url: str, database: str
) -> tuple[str, str]:
    """A premium learner and the published Schubert waltz, both kept by ai-scoring in
    `database`: (access token, piece id)."""
    user, piece_id = f"learner-{uuid.uuid4().hex[:6]}", f"schubert-{uuid.uuid4().hex[:6]}"
    score = score_to_dict(load_score(VIENNA / "musicxml" / "Schubert_D783_no15.musicxml"))
    now = datetime.now(UTC)
    await publish_events(amqp_url, [
        PiecePublished(piece_id=piece_id, version=1, title="Valses sentimentales no. 15",
                       composer="Schubert", level=4, owner_id=None, visibility="public",
                       score=score),
        EntitlementsChanged(user_id=user, plan="premium_monthly", limits=PREMIUM,
                            valid_until=now + timedelta(days=1), version=1, as_of=now),
    ])  # fmt: skip
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:

        async def kept() -> bool:
            db = client[database]
            return bool(
                await db.pieces.count_documents({"piece_id": piece_id})
                and await db.entitlements.count_documents({"user_id": user})
            )

        await eventually(kept, "ai-scoring to keep the piece and the plan")
    finally:
        await client.close()
    tokens = TokenFactory(key)
    return tokens.sign(tokens.claims(sub=user)), piece_id


def take_notes(count: int) -> list[dict[str, Any]]:
    """The first `count` notes of a real performance of the piece."""
    return list(load_performance(VIENNA / "midi" / "Schubert_D783_no15_p01.mid").notes[:count])


def note_messages(first_seq: int, notes: list[dict[str, Any]]) -> list[str]:
    """One `notes` message per note (its note-on and note-off), seqs from `first_seq`."""
    out = []
    for seq, n in enumerate(notes, start=first_seq):
        pitch = int(n["pitch"])
        on = {"t": float(n["onset_s"]), "kind": "on", "pitch": pitch, "velocity": 70}
        off = {"t": float(n["offset_s"]), "kind": "off", "pitch": pitch}
        out.append(json.dumps({"type": "notes", "seq": seq, "events": [on, off]}))
    return out


def connect(port: int, token: str) -> Any:
    url = f"ws://127.0.0.1:{port}/ws/v1/sessions"
    return websockets.connect(url, subprotocols=["sonata.v1", f"bearer.{token}"])  # type: ignore[list-item]


async def recv(ws: Any, kind: str, within: float = 20.0, **fields: Any) -> dict[str, Any]:
    """The next message of `kind` (with these field values), skipping the others."""
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
        assert msg["type"] not in ("error", "refused"), msg
        if msg["type"] == kind and all(msg.get(k) == v for k, v in fields.items()):
            return msg
