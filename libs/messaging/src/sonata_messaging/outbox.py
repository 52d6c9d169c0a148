"""The producer side: events written in the same transaction as the state change."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from sonata_contracts import Event

from sonata_messaging.correlation import get_correlation_id

OUTBOX_COLLECTION = "outbox"


class Outbox:
    def __init__(self, database: AsyncDatabase[Any], service: str) -> None:
        self.service = service
        self.collection: AsyncCollection[dict[str, Any]] = database[OUTBOX_COLLECTION]
        self._committed = asyncio.Event()

    def notify_committed(self) -> None:
        """Wake this process's relay: a transaction that wrote rows has committed."""
        self._committed.set()

    async def wait_for_commit(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._committed.wait(), at_most)
        self._committed.clear()

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("published_at", ASCENDING), ("created_at", ASCENDING)], name="pending"
        )

    async def add(self, event: Event, session: AsyncClientSession) -> None:
        if event.correlation_id is None and (cid := get_correlation_id()) is not None:
            event = event.model_copy(update={"correlation_id": cid})
        await self.collection.insert_one(
            {
                "_id": str(event.id),
                "name": event.NAME,
                "body": event.to_json().decode(),
                "correlation_id": event.correlation_id,
                "created_at": datetime.now(UTC),
                "published_at": None,
            },
            session=session,
        )

    async def pending(self, limit: int) -> list[dict[str, Any]]:
        cursor = (
            self.collection.find({"published_at": None}).sort("created_at", ASCENDING).limit(limit)
        )
        return await cursor.to_list(length=limit)

    async def oldest_pending_age(self) -> float:
        row = await self.collection.find_one(
            {"published_at": None}, sort=[("created_at", ASCENDING)], projection={"created_at": 1}
        )
        if row is None:
            return 0.0
        created: datetime = row["created_at"]
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - created).total_seconds())

    async def delete_naming(self, value: str, session: AsyncClientSession) -> int:
        """Erasure: drop every row, sent or not, whose event holds ``value`` as a JSON string
        (a user's id); returns how many went."""
        named = re.escape(json.dumps(value, ensure_ascii=False))
        result = await self.collection.delete_many({"body": {"$regex": named}}, session=session)
        return result.deleted_count

    async def mark_published(self, ids: list[str]) -> None:
        await self.collection.update_many(
            {"_id": {"$in": ids}, "published_at": None},
            {"$set": {"published_at": datetime.now(UTC)}},
        )
