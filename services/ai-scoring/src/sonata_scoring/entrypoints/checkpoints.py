"""The group commit of live-session checkpoints: acks follow it, judgements never wait on it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sonata_scoring.service_layer.sessions import checkpoint_many, touch_sessions

if TYPE_CHECKING:
    from sonata_scoring.entrypoints.connection import Connection

log = logging.getLogger("sonata_scoring.ws")


# The interval is cut into this many slots, each connection keeps one, and each slot is written
# in its turn: a write of a tenth of the sessions every interval/10, never one of all of them at
# once (and all their acks), during which every session of the process waits.
SLOTS = 10


class GroupCommit:
    """Checkpoints of every connection of this process, one database write per slot of the
    interval: the database sees one insert of a small chunk per session per interval instead
    of a write per message, and judgements never wait on it."""

    def __init__(self, interval_s: float, touch_after_s: float) -> None:
        self.interval_s = interval_s
        self.touch_after_s = touch_after_s
        self.slots: list[set[Connection]] = [set() for _ in range(SLOTS)]
        self.turn = 0  # the slot written next
        self.handed = 0  # slots given out, round robin
        self.task = asyncio.create_task(self._run(), name="checkpoint group commit")

    def add(self, connection: Connection) -> None:
        """Wait for the connection's slot: within one interval, its checkpoint is written."""
        if connection.commit_slot < 0:
            connection.commit_slot = self.handed % SLOTS
            self.handed += 1
        self.slots[connection.commit_slot].add(connection)

    async def _run(self) -> None:
        # ends when nothing is pending, so an idle process runs no timer; the next ack restarts it
        loop = asyncio.get_running_loop()
        step = self.interval_s / SLOTS
        due = loop.time()
        while any(self.slots):
            due += step
            await asyncio.sleep(max(0.0, due - loop.time()))
            pending, self.turn = self.slots[self.turn], (self.turn + 1) % SLOTS
            try:
                await self._commit(pending)
            except Exception:
                # the pending connections stay pending: their acks wait for the next round
                log.exception("checkpoint group commit failed; retrying")

    @staticmethod
    def _drop(pending: set[Connection], connections: list[Connection]) -> None:
        for c in connections:
            pending.discard(c)
            c.commit_pending = False

    async def _commit(self, pending: set[Connection]) -> None:
        # a connection flushing on its own (finish, close) keeps its lock: it waits a round
        self._drop(pending, [c for c in pending if c.done.is_set()])
        batch = [c for c in pending if not c.flush_lock.locked()]
        if not batch:
            return
        for c in batch:
            await c.flush_lock.acquire()  # free, so taken without yielding
        try:
            work = [
                (c, c.handle, c.processed)
                for c in batch
                if c.handle is not None and c.processed != c.handle.last_seq
            ]
            now = datetime.now(UTC)
            written = await checkpoint_many(
                [(h, seq) for _, h, seq in work], now, self.touch_after_s
            )
            # connections with nothing to write (paused, pinging) still say the session is alive
            await touch_sessions(
                [
                    c.handle
                    for c in batch
                    if c.handle is not None and c.processed == c.handle.last_seq
                ],
                now,
                self.touch_after_s,
            )
            for (c, h, _), ok in zip(work, written, strict=True):
                if ok:
                    c.send("ack", seq=h.last_seq)
                else:
                    c.end(4000, "the session was finished or taken over by another connection")
            # what arrived during the write stays pending for the next round
            self._drop(
                pending, [c for c in batch if c.handle is None or c.processed == c.handle.last_seq]
            )
        finally:
            for c in batch:
                c.flush_lock.release()


_GROUP: GroupCommit | None = None


def group_commit(interval_s: float, touch_after_s: float) -> GroupCommit:
    global _GROUP  # one per process and event loop, made on first use
    if (
        _GROUP is None
        or _GROUP.task.done()
        or _GROUP.task.get_loop() is not asyncio.get_running_loop()
    ):
        _GROUP = GroupCommit(interval_s, touch_after_s)
    return _GROUP
