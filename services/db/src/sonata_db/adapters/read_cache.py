"""An in-process cache of rendered read answers, invalidated by generation counters.

Every cached answer belongs to one caller and records two generations when its computation
began: the library's (pieces and teacher/parent links, which decide what anyone may see) and
the caller's own (their performances, profile, assignments, plan). A write bumps the
generations it touches once its transaction has committed, so an answer computed from
data read before the commit is never served after it. Entries also expire after ``ttl_s``:
that bounds how long a write committed by another process (a second replica sharing the
database) or the passing of time (today's date for a streak, a plan running out) takes to show:
one read just after may still get the old answer while a fresh one is computed behind it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from prometheus_client import Counter
from sonata_messaging import Transaction

LOOKUPS = Counter("sonata_db_read_cache", "Read cache lookups", ["result"])
_HIT, _STALE, _MISS = LOOKUPS.labels("hit"), LOOKUPS.labels("stale"), LOOKUPS.labels("miss")


@dataclass(frozen=True)
class Cached:
    body: bytes
    etag: str
    library: int
    user: int
    expires: float


@dataclass(frozen=True)
class Stamp:
    """The generations a computation started from."""

    library: int
    user: int


class ReadCache:
    def __init__(
        self,
        ttl_s: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = 64 * 2**20,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._bytes = 0
        # Users whose generation is remembered; past this, every entry is dropped at once.
        self.max_users = max(1000, max_entries)
        self._clock = clock
        self._library = 0
        self._users: dict[str, int] = {}
        self._entries: OrderedDict[tuple[str, ...], Cached] = OrderedDict()
        self._computing: dict[tuple[str, ...], tuple[Stamp, asyncio.Future[Cached]]] = {}
        self._refreshing: set[asyncio.Task[Cached]] = set()

    def stamp(self, user_id: str) -> Stamp:
        return Stamp(self._library, self._users.get(user_id, 0))

    def get(self, key: tuple[str, ...], user_id: str) -> Cached | None:
        """The kept answer if it is current; nothing is counted when there is none."""
        entry = self._entries.get(key)
        if (
            entry is None
            or entry.library != self._library
            or entry.user != self._users.get(user_id, 0)
            or entry.expires <= self._clock()
        ):
            return None
        self._entries.move_to_end(key)
        _HIT.inc()
        return entry

    def put(self, key: tuple[str, ...], stamp: Stamp, body: bytes) -> Cached:
        entry = Cached(body, etag_of(body), stamp.library, stamp.user, self._clock() + self.ttl_s)
        if self.ttl_s > 0 and self.max_entries > 0 and len(body) <= self.max_bytes // 8:
            self._drop(key)
            self._entries[key] = entry
            self._bytes += len(body)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))  # the least recently used
        return entry

    def _drop(self, key: tuple[str, ...]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)

    async def answer(
        self, key: tuple[str, ...], user_id: str, render: Callable[[], Awaitable[bytes]]
    ) -> Cached:
        """The kept answer, or ``render``'s. An answer past its time but with no write seen
        since is still given once (if it expired less than ``ttl_s`` ago) while a fresh one is
        computed behind it. Requests arriving while the same answer (same key, same
        generations) is being computed wait for it rather than compute it again."""
        entry = self._entries.get(key)
        stamp = self.stamp(user_id)
        if entry is not None and (entry.library, entry.user) == (stamp.library, stamp.user):
            now = self._clock()
            if now < entry.expires:
                self._entries.move_to_end(key)
                _HIT.inc()
                return entry
            if now < entry.expires + self.ttl_s:
                _STALE.inc()
                if key not in self._computing:
                    self._behind(key, stamp, render)
                return entry
        _MISS.inc()
        return await self._compute(key, stamp, render)

    def _behind(
        self, key: tuple[str, ...], stamp: Stamp, render: Callable[[], Awaitable[bytes]]
    ) -> None:
        task = asyncio.create_task(self._compute(key, stamp, render))
        self._refreshing.add(task)

        def done(task: asyncio.Task[Cached]) -> None:
            self._refreshing.discard(task)
            if task.cancelled() or task.exception() is not None:
                self._drop(key)  # the next request computes (or fails) itself

        task.add_done_callback(done)

    async def _compute(
        self, key: tuple[str, ...], stamp: Stamp, render: Callable[[], Awaitable[bytes]]
    ) -> Cached:
        running = self._computing.get(key)
        if running is not None and running[0] == stamp:
            try:
                return await asyncio.shield(running[1])
            except asyncio.CancelledError:
                if not running[1].cancelled():
                    raise  # this request was cancelled, not the computation it waited for
        future: asyncio.Future[Cached] = asyncio.get_running_loop().create_future()
        self._computing[key] = (stamp, future)
        try:
            entry = self.put(key, stamp, await render())
        except asyncio.CancelledError:
            future.cancel()  # whoever waits computes it themselves
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: nobody may be waiting for it
            raise
        finally:
            if self._computing.get(key, (None, None))[1] is future:
                del self._computing[key]
        future.set_result(entry)
        return entry

    def invalidate(self, users: Iterable[str] = (), library: bool = False) -> None:
        if library:
            self._library += 1
        for user_id in users:
            self._users[user_id] = self._users.get(user_id, 0) + 1
        if len(self._users) > self.max_users:
            # Forgetting the users' generations is safe only if no entry survives it.
            self._users.clear()
            self._library += 1

    def after_commit(
        self, tx: Transaction, users: Iterable[str] = (), library: bool = False
    ) -> None:
        """Invalidate once ``tx`` commits (nothing if it aborts)."""
        touched = tuple(users)
        tx.after_commit(lambda: self.invalidate(touched, library))


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
