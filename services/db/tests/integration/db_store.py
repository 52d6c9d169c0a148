"""A fresh library database on SecantusDB with Beanie and the outbox, for service-layer tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sonata_db.adapters.documents import DOCUMENTS
from sonata_messaging import Outbox, Transaction, run_in_transaction

T = TypeVar("T")


@dataclass
class Store:
    client: AsyncMongoClient[dict[str, Any]]
    database: AsyncDatabase[dict[str, Any]]
    outbox: Outbox

    async def tx(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        return await run_in_transaction(self.client, fn, outbox=self.outbox)

    async def published(self, name: str) -> list[dict[str, Any]]:
        rows = self.database.outbox.find({"name": name}).sort("created_at", 1)
        return [json.loads(row["body"]) async for row in rows]


async def open_store(mongo_url: str, prefix: str) -> AsyncIterator[Store]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    database = client[f"{prefix}_{uuid.uuid4().hex[:8]}"]
    try:
        await init_beanie(database=database, document_models=DOCUMENTS)
        outbox = Outbox(database, "db")
        await outbox.ensure_indexes()
        yield Store(client, database, outbox)
    finally:
        await client.drop_database(database.name)
        await client.close()
