"""A consumer of `auth.user_deleted.v1` run as its own OS process by the delivery tests.

Each application of an event inserts one `effects` row (no unique index), so an event applied
twice shows up as two rows and a lost one as none.

    python consumer_process.py <mongo_url> <database> <service> <amqp_url>
"""

import asyncio
import sys

from pymongo import AsyncMongoClient
from sonata_contracts.auth import UserDeleted
from sonata_messaging import Consumer, Transaction, on


async def main(mongo_url: str, database: str, service: str, amqp_url: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[database]

    async def apply(event: UserDeleted, tx: Transaction) -> None:
        await db.effects.insert_one(
            {"event_id": str(event.id), "user_id": event.user_id}, session=tx.session
        )

    await Consumer(service, amqp_url, client, db, [on(UserDeleted, apply)], prefetch=32).run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
