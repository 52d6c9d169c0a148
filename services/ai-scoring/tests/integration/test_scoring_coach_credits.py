"""Coach credits through ai-scoring as a process and the real broker: learners on the free
plan play over the WebSocket, are refused the coach with the way to unlock it, and payment's
`payment.credits_changed.v1` for a spend on `coach:<performance_id>` unlocks the feedback on
that performance for that learner only. Replays, refunds and spends on anything else change
nothing."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from sonata_contracts.db import PiecePublished
from sonata_contracts.payment import CreditsChanged
from sonata_engine import load_score, score_to_dict
from sonata_testing import (
    JwksServer,
    ServiceProcess,
    SigningKey,
    TokenFactory,
    eventually,
    publish_events,
)

sys.path.insert(0, str(Path(__file__).parent))

from scoring_live_support import VIENNA, connect, note_messages, recv, take_notes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="module")
def database() -> str:
    return f"scoring_credits_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def scoring(
    mongo_url: str,
    amqp_url: str,
    key: SigningKey,
    database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    with JwksServer([key.jwk]) as jwks:
        env = {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": database,
            "AMQP_URL": amqp_url,
            "AUTH_JWKS_URL": jwks.url,
        }
        service = ServiceProcess(
            "ai-scoring",
            "sonata_scoring.main:create_app",
            env,
            log_dir=tmp_path_factory.mktemp("scoring-credits"),
        )
        service.start()
        try:
            yield service
        finally:
            service.stop()


async def publish_piece(amqp_url: str, mongo_url: str, database: str) -> str:
    piece_id = f"schubert-{uuid.uuid4().hex[:6]}"
    score = score_to_dict(load_score(VIENNA / "musicxml" / "Schubert_D783_no15.musicxml"))
    await publish_events(amqp_url, [
        PiecePublished(piece_id=piece_id, version=1, title="Valses sentimentales no. 15",
                       composer="Schubert", level=4, owner_id=None, visibility="public",
                       score=score),
    ])  # fmt: skip
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:

        async def kept() -> bool:
            return bool(await client[database].pieces.count_documents({"piece_id": piece_id}))

        await eventually(kept, "ai-scoring to keep the piece")
    finally:
        await client.close()
    return piece_id


async def play(service: ServiceProcess, token: str, piece_id: str, notes: int = 4) -> str:
    """A short live session on the free plan, finished: its performance id."""
    async with connect(service.port, token) as ws:
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": piece_id}))
        await recv(ws, "started")
        for seq, message in enumerate(note_messages(1, take_notes(notes)), start=1):
            await ws.send(message)
            await recv(ws, "judged", seq=seq)
        await ws.send(json.dumps({"type": "finish", "seq": notes + 1}))
        return str((await recv(ws, "finished"))["performance_id"])


def entry(user_id: str, delta: int, reason: Any, reference: str | None) -> CreditsChanged:
    return CreditsChanged(
        user_id=user_id,
        delta=delta,
        balance=10,
        reason=reason,
        entry_id=uuid.uuid4().hex,
        reference=reference,
    )


async def test_a_credit_spent_on_a_performance_unlocks_its_coach_for_the_spender_only(
    scoring: ServiceProcess, key: SigningKey, amqp_url: str, mongo_url: str, database: str
) -> None:
    tokens = TokenFactory(key)
    ana, ben = f"ana-{uuid.uuid4().hex[:6]}", f"ben-{uuid.uuid4().hex[:6]}"
    auth = {u: {"Authorization": f"Bearer {tokens.sign(tokens.claims(sub=u))}"} for u in (ana, ben)}
    piece_id = await publish_piece(amqp_url, mongo_url, database)
    ana_take = await play(scoring, auth[ana]["Authorization"].removeprefix("Bearer "), piece_id)
    ben_take = await play(scoring, auth[ben]["Authorization"].removeprefix("Bearer "), piece_id)

    async with httpx.AsyncClient(base_url=scoring.base_url, timeout=20) as http:

        async def coach(user: str, performance_id: str) -> httpx.Response:
            return await http.get(f"/v1/performances/{performance_id}/coach", headers=auth[user])

        refused = await coach(ana, ana_take)
        assert (refused.status_code, refused.json()["error"]) == (403, "coach_not_in_plan")
        detail = refused.json()["detail"]
        assert "a paid plan with the coach unlocks it" in detail
        assert "POST /api/payment/v1/credits/spend" in detail
        assert f'"reference": "coach:{ana_take}"' in detail

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        inbox = client[database].inbox
        try:
            # spends that are not Ana's on Ana's take, and Ana's credits on anything else
            others = [
                entry(ben, -1, "spend", f"coach:{ana_take}"),
                entry(ana, -1, "spend", f"coach:{ben_take}"),
                entry(ana, -1, "spend", f"coach:{uuid.uuid4().hex}"),
                entry(ana, -1, "spend", f"lesson:{ana_take}"),
                entry(ana, 10, "purchase", None),
            ]
            await publish_events(amqp_url, others)

            async def handled(events: list[CreditsChanged]) -> bool:
                ids = [str(e.id) for e in events]
                return await inbox.count_documents({"event_id": {"$in": ids}}) == len(ids)

            await eventually(lambda: handled(others), "ai-scoring to handle the ledger entries")
            assert (await coach(ana, ana_take)).status_code == 403
            assert (await coach(ben, ben_take)).status_code == 403
            assert (await coach(ben, ana_take)).status_code == 404  # not Ben's performance

            spend = entry(ana, -1, "spend", f"coach:{ana_take}")
            await publish_events(amqp_url, [spend, spend])  # redelivered: one effect

            async def unlocked() -> bool:
                return (await coach(ana, ana_take)).status_code == 200

            await eventually(unlocked, "Ana's spend to unlock the coach on her take")
            feedback = (await coach(ana, ana_take)).json()
            assert feedback["performance_id"] == ana_take
            assert feedback["feedback"]["drill"]["first_bar"] >= 1

            # a refund taking the credit back keeps the feedback given
            refund = entry(ana, -1, "refund", None)
            await publish_events(amqp_url, [refund])
            await eventually(lambda: handled([refund]), "ai-scoring to handle the refund")
            assert (await coach(ana, ana_take)).status_code == 200
            assert (await coach(ben, ben_take)).status_code == 403
            kept = client[database].coach_unlocks.find({"user_id": ana, "performance_id": ana_take})
            assert [u["entry_id"] for u in await kept.to_list(None)] == [spend.entry_id]
        finally:
            await client.close()
