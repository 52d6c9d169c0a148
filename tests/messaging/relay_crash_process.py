"""An outbox relay that dies the hard way right after the broker confirmed a batch and before
the rows are marked published: the crash window the inbox has to absorb.

    python relay_crash_process.py <mongo_url> <database> <service> <amqp_url>
"""

import asyncio
import os
import sys

from pymongo import AsyncMongoClient
from sonata_messaging import Outbox, OutboxRelay

CRASH_EXIT_CODE = 17


class CrashAfterConfirm(OutboxRelay):
    async def _mark_published(self, ids: list[str]) -> None:
        os._exit(CRASH_EXIT_CODE)


async def main(mongo_url: str, database: str, service: str, amqp_url: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url, tz_aware=True)
    await CrashAfterConfirm(Outbox(client[database], service), amqp_url).run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
