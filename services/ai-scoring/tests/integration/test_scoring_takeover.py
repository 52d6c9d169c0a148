"""A session resumed on another ai-scoring process: the connection still holding it on the first
process is stopped at its next checkpoint (closed with 4000), nothing it judged after the
takeover reaches the checkpoint, and the report holds every note exactly once."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sonata_testing import JwksServer, ServiceProcess, SigningKey

sys.path.insert(0, str(Path(__file__).parent))

from scoring_live_support import connect, note_messages, premium_learner, recv, take_notes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="module")
def database() -> str:
    return f"scoring_takeover_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def pair(
    mongo_url: str,
    amqp_url: str,
    key: SigningKey,
    database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Two ai-scoring processes on one database, as two replicas behind the gateway."""
    with JwksServer([key.jwk]) as jwks:
        env = {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": database,
            "AMQP_URL": amqp_url,
            "AUTH_JWKS_URL": jwks.url,
        }
        logs = tmp_path_factory.mktemp("scoring-takeover")
        procs = [
            ServiceProcess("ai-scoring", "sonata_scoring.main:create_app", env, log_dir=logs)
            for _ in range(2)
        ]
        try:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda p: p.start(timeout=150), procs))
            yield procs[0], procs[1]
        finally:
            for proc in procs:
                proc.stop()


@pytest.fixture(scope="module")
async def learner(
    pair: tuple[ServiceProcess, ServiceProcess],
    key: SigningKey,
    amqp_url: str,
    mongo_url: str,
    database: str,
) -> tuple[str, str]:
    return await premium_learner(key, amqp_url, mongo_url, database)


async def closed_with(ws: Any, within: float = 20.0) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def test_the_connection_left_behind_on_another_process_cannot_write(
    pair: tuple[ServiceProcess, ServiceProcess], learner: tuple[str, str]
) -> None:
    token, piece_id = learner
    one, two = pair
    notes = take_notes(30)
    async with connect(one.port, token) as old:
        await old.send(json.dumps({"type": "start", "seq": 0, "piece_id": piece_id}))
        session_id = (await recv(old, "started"))["session_id"]
        for m in note_messages(1, notes[:10]):
            await old.send(m)
        await recv(old, "ack", seq=10)  # the first ten are in the checkpoint

        async with connect(two.port, token) as new:
            await new.send(json.dumps({
                "type": "resume", "seq": 0, "session_id": session_id, "last_acked_seq": 10,
            }))  # fmt: skip
            assert (await recv(new, "resumed"))["last_acked_seq"] == 10
            # the old connection plays on (its network never told it), judged in its memory
            # only: its next checkpoint finds its chunk taken and it is closed
            for m in note_messages(11, notes[10:15]):
                await old.send(m)
            assert await closed_with(old) == 4000
            for m in note_messages(11, notes[10:30]):
                await new.send(m)
            await recv(new, "ack", seq=30)
            await new.send(json.dumps({"type": "finish", "seq": 31}))
            finished = await recv(new, "finished")

    async with httpx.AsyncClient(base_url=two.base_url, timeout=20) as http:
        got = await http.get(
            f"/v1/performances/{finished['performance_id']}",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert got.status_code == 200, got.text
    played = [n for n in got.json()["report"]["notes"] if n["perf_id"]]
    assert len(played) == 30  # every note once: none of the old connection's five twice
