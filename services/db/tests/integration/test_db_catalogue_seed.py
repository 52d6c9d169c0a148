"""The starting catalogue is loaded once: running the seed again adds nothing and publishes
nothing, so restarting db (or starting a second replica) leaves the library as it was."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from beanie import init_beanie
from pymongo import AsyncMongoClient
from sonata_db.adapters.documents import DOCUMENTS
from sonata_db.adapters.scores import Limits
from sonata_db.service_layer.pieces import parse_catalogue, seed_catalogue
from sonata_messaging import Outbox, Transaction, run_in_transaction

pytestmark = pytest.mark.integration


async def test_seeding_twice_adds_the_catalogue_once(mongo_url: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    database = client[f"library_seed_{uuid.uuid4().hex[:8]}"]
    try:
        await init_beanie(database=database, document_models=DOCUMENTS)
        outbox = Outbox(database, "db")
        await outbox.ensure_indexes()
        parsed = parse_catalogue(Limits(2_000_000, 20_000, 2_000))

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
