"""Fixed-window counters in MongoDB, so every instance of auth counts the same attempts."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from sonata_auth.adapters.documents import RateLimitDoc


class MongoRateLimiter:
    async def hit(self, bucket: str, limit: int, window_s: int, now: datetime) -> int | None:
        ts = int(now.timestamp())
        window = ts // window_s
        ends = (window + 1) * window_s
        key = f"{bucket}|{window_s}|{window}"
        query = {"_id": key}
        update = {
            "$inc": {"hits": 1},
            "$setOnInsert": {"expires_at": now + timedelta(seconds=ends - ts)},
        }
        collection = RateLimitDoc.get_pymongo_collection()
        try:
            doc = await collection.find_one_and_update(
                query, update, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            # Two first hits raced on the upsert; now the row exists.
            doc = await collection.find_one_and_update(
                query, update, return_document=ReturnDocument.AFTER
            )
        if doc is not None and int(doc["hits"]) > limit:
            return max(1, ends - ts)
        return None
