"""The starting catalogue is loaded once: running the seed again adds nothing and publishes
nothing, so restarting db (or starting a second replica) leaves the library as it was. A piece
the upload limits refuse is skipped, said in the log and on /metrics, and db starts anyway."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from beanie import init_beanie
from pymongo import AsyncMongoClient
from sonata_db.adapters.documents import DOCUMENTS
from sonata_db.adapters.scores import Limits
from sonata_db.service_layer.pieces import parse_catalogue, seed_catalogue
from sonata_messaging import Outbox, Transaction, run_in_transaction
from sonata_testing import JwksServer, RabbitVhost, ServiceProcess, SigningKey, TokenFactory

pytestmark = pytest.mark.integration


async def test_seeding_twice_adds_the_catalogue_once(mongo_url: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    database = client[f"library_seed_{uuid.uuid4().hex[:8]}"]
    try:
        await init_beanie(database=database, document_models=DOCUMENTS)
        outbox = Outbox(database, "db")
        await outbox.ensure_indexes()
        parsed, skipped = parse_catalogue(Limits(2_000_000, 20_000, 2_000))
        assert skipped == []

        async def seed(tx: Transaction) -> list[str]:
            return await seed_catalogue(tx, parsed)

        first = await run_in_transaction(client, seed, outbox=outbox)
        again = await run_in_transaction(client, seed, outbox=outbox)
        assert sorted(first) == [
            "catalogue-c-major-scale",
            "catalogue-clementi-op36-1",
            "catalogue-minuet-in-g",
            "catalogue-ode-to-joy",
            "catalogue-twinkle-theme",
        ]
        assert again == []
        assert await database.pieces.count_documents({}) == 5
        assert await database.piece_versions.count_documents({}) == 5
        assert await database.outbox.count_documents({"name": "db.piece_published.v1"}) == 5
        levels = {p["piece_id"]: p["level"] async for p in database.pieces.find({})}
        assert levels["catalogue-c-major-scale"] < levels["catalogue-minuet-in-g"]
        assert levels["catalogue-minuet-in-g"] < levels["catalogue-clementi-op36-1"]
    finally:
        await client.drop_database(database.name)
        await client.close()


def test_a_catalogue_piece_over_the_limits_is_skipped_and_db_still_starts(
    mongo_url: str, jwks: JwksServer, key: SigningKey, tmp_path: Path
) -> None:
    database = f"library_limits_{uuid.uuid4().hex[:8]}"
    with RabbitVhost("sonata-db-seed-limits") as vhost:
        env = {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": database,
            "AMQP_URL": vhost.url,
            "AUTH_JWKS_URL": jwks.url,
            "MAX_SCORE_NOTES": "90",  # the Minuet in G has 100
            "LOG_LEVEL": "INFO",
        }
        service = ServiceProcess("db-limits", "sonata_db.main:create_app", env, log_dir=tmp_path)
        service.start(timeout=90)
        try:
            tokens = TokenFactory(key)
            token = tokens.sign(tokens.claims(sub="u-limits", roles=("student",)))
            r = httpx.get(
                f"{service.base_url}/v1/pieces",
                params={"scope": "public", "page_size": 50},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            assert sorted(p["piece_id"] for p in r.json()["items"]) == [
                "catalogue-c-major-scale",
                "catalogue-clementi-op36-1",
                "catalogue-ode-to-joy",
                "catalogue-twinkle-theme",
            ]
            metrics = httpx.get(f"{service.base_url}/metrics").text
            assert "sonata_db_catalogue_skipped 1.0" in metrics
        finally:
            service.stop()
            asyncio.run(_drop(mongo_url, database))
    log = service.log_path.read_text(errors="replace")
    assert "minuet-in-g.musicxml skipped: the score has 100 notes; at most 90" in log
    assert "4 pieces added, 1 skipped" in log
    assert "Traceback" not in log


async def _drop(mongo_url: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        await client.drop_database(database)
    finally:
        await client.close()
