"""The read cache's rules: a write drops exactly the answers that depend on it, even one being
computed while the write commits; concurrent requests compute an answer once; an answer past
its time is given while a fresh one is computed, but never long after; the size stays bounded."""

from __future__ import annotations

import asyncio

from sonata_db.adapters.read_cache import ReadCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """What the database would say, and how many times it was asked."""

    def __init__(self, body: bytes = b"v1") -> None:
        self.body = body
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def render(self) -> bytes:
        self.calls += 1
        body = self.body
        if self.gate is not None:
            await self.gate.wait()
        return body


KEY = ("/v1/me/progress", "", "ana", "student")


async def test_a_write_drops_the_writers_answers_and_no_one_elses() -> None:
    cache = ReadCache(ttl_s=60, max_entries=100)
    ana, leo = Source(b"ana-1"), Source(b"leo-1")
    leo_key = ("/v1/me/progress", "", "leo", "student")
    assert (await cache.answer(KEY, "ana", ana.render)).body == b"ana-1"
    assert (await cache.answer(leo_key, "leo", leo.render)).body == b"leo-1"
    ana.body = b"ana-2"
    assert (await cache.answer(KEY, "ana", ana.render)).body == b"ana-1"  # kept
    cache.invalidate(users=["ana"])
    assert (await cache.answer(KEY, "ana", ana.render)).body == b"ana-2"
    assert (await cache.answer(leo_key, "leo", leo.render)).body == b"leo-1"
    assert (ana.calls, leo.calls) == (2, 1)
    leo.body = b"leo-2"
    cache.invalidate(library=True)  # a piece changed: everyone's answers go
    assert (await cache.answer(leo_key, "leo", leo.render)).body == b"leo-2"


async def test_an_answer_computed_across_a_commit_is_not_kept_for_later() -> None:
    cache = ReadCache(ttl_s=60, max_entries=100)
    source = Source(b"before")
    source.gate = asyncio.Event()
    reading = asyncio.create_task(cache.answer(KEY, "ana", source.render))
    await asyncio.sleep(0)  # the read has begun with the old data
    cache.invalidate(users=["ana"])  # the write commits meanwhile
    source.gate.set()
    assert (await reading).body == b"before"
    source.body, source.gate = b"after", None
    assert (await cache.answer(KEY, "ana", source.render)).body == b"after"


async def test_concurrent_requests_compute_an_answer_once() -> None:
    cache = ReadCache(ttl_s=60, max_entries=100)
    source = Source()
    source.gate = asyncio.Event()
    waiting = [asyncio.create_task(cache.answer(KEY, "ana", source.render)) for _ in range(20)]
    await asyncio.sleep(0)
    source.gate.set()
    answers = await asyncio.gather(*waiting)
    assert {a.body for a in answers} == {b"v1"}
    assert source.calls == 1


async def test_a_failed_computation_fails_its_waiters_and_is_not_kept() -> None:
    cache = ReadCache(ttl_s=60, max_entries=100)
    calls = 0

    async def missing() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise LookupError("no such performance")

    results = await asyncio.gather(
        *(cache.answer(KEY, "ana", missing) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert calls == 1
    assert cache.get(KEY, "ana") is None


async def test_past_its_time_an_answer_is_given_while_a_fresh_one_is_made_but_not_long_after() -> (
    None
):
    clock = Clock()
    cache = ReadCache(ttl_s=5, max_entries=100, clock=clock)
    source = Source(b"old")
    await cache.answer(KEY, "ana", source.render)
    source.body = b"new"  # written by another replica: no invalidation here
    clock.now += 6
    assert (await cache.answer(KEY, "ana", source.render)).body == b"old"
    for _ in range(10):  # the refresh behind it finishes
        await asyncio.sleep(0)
    assert (await cache.answer(KEY, "ana", source.render)).body == b"new"
    source.body = b"newer"
    clock.now += 11  # more than twice the time: computed before answering
    assert (await cache.answer(KEY, "ana", source.render)).body == b"newer"


async def test_kept_answers_and_remembered_users_stay_bounded() -> None:
    cache = ReadCache(ttl_s=60, max_entries=3)
    source = Source()
    for k in range(10):
        await cache.answer(("/p", str(k), "ana", ""), "ana", source.render)
    assert [cache.get(("/p", str(k), "ana", ""), "ana") is not None for k in range(10)] == [
        False
    ] * 7 + [True] * 3
    small = ReadCache(ttl_s=60, max_entries=100, max_bytes=800)
    for k in range(10):
        await small.answer(("/p", str(k), "ana", ""), "ana", Source(b"x" * 100).render)
    kept = [small.get(("/p", str(k), "ana", ""), "ana") is not None for k in range(10)]
    assert kept == [False] * 2 + [True] * 8  # 800 bytes
    await small.answer(("/big", "", "ana", ""), "ana", Source(b"x" * 101).render)
    assert small.get(("/big", "", "ana", ""), "ana") is None  # over an eighth: not kept
    cache.invalidate(users=[f"u{k}" for k in range(cache.max_users + 1)])
    assert cache.get(("/p", "9", "ana", ""), "ana") is None  # forgetting users dropped all
