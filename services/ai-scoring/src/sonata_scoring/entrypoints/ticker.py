"""One timer for every live connection of the process, instead of one task per connection:
auth and idle timeouts, missed notes and position updates."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sonata_scoring.entrypoints.connection import Connection

log = logging.getLogger("sonata_scoring.ws")


class Ticker:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.connections: set[Connection] = set()
        self.task = asyncio.create_task(self._run(), name="live connection ticker")

    async def _run(self) -> None:
        # ends when no connection is left, so an idle process runs no timer
        while self.connections:
            await asyncio.sleep(self.interval_s)
            now, wall = time.perf_counter(), time.time()
            for connection in list(self.connections):
                try:
                    connection.tick(now, wall)
                except Exception:
                    log.exception("live connection tick failed")
                    connection.end(1011, "internal error")


_TICKER: Ticker | None = None


def ticker(interval_s: float) -> Ticker:
    global _TICKER  # one per process and event loop, made on first use
    if (
        _TICKER is None
        or _TICKER.task.done()
        or _TICKER.task.get_loop() is not asyncio.get_running_loop()
    ):
        _TICKER = Ticker(interval_s)
    return _TICKER
