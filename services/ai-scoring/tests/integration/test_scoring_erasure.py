"""A learner's notes do not outlive their use: a finished session keeps its report, not its
checkpoint; `auth.user_deleted.v1` takes the sessions, the notes played, the performances and
the coach conversations and the coach unlocks bought with credits."""

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
from sonata_contracts.auth import UserDeleted
from sonata_contracts.payment import CreditsChanged
from sonata_testing import JwksServer, ServiceProcess, SigningKey, eventually, publish_events

sys.path.insert(0, str(Path(__file__).parent))

from scoring_live_support import connect, note_messages, premium_learner, recv, take_notes

pytestmark = pytest.mark.integration
KEY = SigningKey()


@pytest.fixture(scope="module")
def database() -> str:
    return f"scoring_erasure_{uuid.uuid4().hex[:8]}"


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
        }
        service = ServiceProcess(
            "ai-scoring", "sonata_scoring.main:create_app", env,
            log_dir=tmp_path_factory.mktemp("scoring-erasure"),
        )  # fmt: skip
        service.start()
        try:
            yield service
        finally:
            service.stop()


async def test_finished_sessions_drop_their_checkpoint_and_deletion_takes_everything(
    scoring: ServiceProcess, amqp_url: str, mongo_url: str, database: str
) -> None:
    token, piece_id = await premium_learner(KEY, amqp_url, mongo_url, database)
    async with connect(scoring.port, token) as ws:
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": piece_id}))
        session_id = (await recv(ws, "started"))["session_id"]
        for seq, message in enumerate(note_messages(1, take_notes(8)), start=1):
            await ws.send(message)
            await recv(ws, "judged", seq=seq)
        await recv(ws, "ack", seq=8)  # the checkpoint holds the notes
        await ws.send(json.dumps({"type": "finish", "seq": 9}))
        performance_id = (await recv(ws, "finished"))["performance_id"]

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    db = client[database]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        assert await db.live_chunks.count_documents({"session_id": session_id}) == 0
        async with httpx.AsyncClient(base_url=scoring.base_url, headers=headers) as http:
            assert (await http.get(f"/v1/performances/{performance_id}")).status_code == 200
            asked = await http.post(
                "/v1/coach/chat",
                json={"message": "what went wrong?", "performance_id": performance_id},
            )
            assert asked.status_code == 200, asked.text
            user_id = (await db.live_sessions.find_one({"session_id": session_id}) or {})["user_id"]
            spend = CreditsChanged(
                user_id=user_id,
                delta=-1,
                balance=0,
                reason="spend",
                entry_id=uuid.uuid4().hex,
                reference=f"coach:{performance_id}",
            )
            await publish_events(amqp_url, [spend])

            async def unlocked() -> bool:
                return await db.coach_unlocks.count_documents({"user_id": user_id}) == 1

            await eventually(unlocked, "the credit spend to unlock the coach")
            await publish_events(amqp_url, [UserDeleted(user_id=user_id)])

            async def erased() -> bool:
                r = await http.get(f"/v1/performances/{performance_id}")
                return r.status_code == 404

            await eventually(erased, "the performance to be erased")
        for collection in (
            "live_sessions",
            "performances",
            "entitlements",
            "coach_conversations",
            "coach_unlocks",
        ):
            assert await db[collection].count_documents({"user_id": user_id}) == 0, collection
    finally:
        await client.close()
