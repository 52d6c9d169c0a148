"""The scheduler's use cases against a real SecantusDB, with the clock stepped by hand: each
learner is reminded once at their own local time, not on a day they practised, and again on
the next unpractised day; an open assignment is reminded once, a day before it is due."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from beanie import init_beanie
from pymongo import AsyncMongoClient
from sonata_contracts.auth import UserRegistered
from sonata_contracts.db import AssignmentCompleted, AssignmentCreated
from sonata_messaging import Transaction, run_in_transaction
from sonata_notifications.adapters.documents import DOCUMENTS, Notification
from sonata_notifications.adapters.repository import MongoStore
from sonata_notifications.domain.model import Preferences
from sonata_notifications.service_layer.handlers import Policy, on_event
from sonata_notifications.service_layer.ports import Store
from sonata_notifications.service_layer.reminders import (
    send_assignment_reminders,
    send_due_reminders,
)

pytestmark = pytest.mark.integration
POLICY = Policy(rate_limit_per_hour=10)


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 3, 10, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@pytest.fixture
async def client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    await init_beanie(
        database=client[f"reminders_{uuid.uuid4().hex[:8]}"], document_models=DOCUMENTS
    )
    yield client
    await client.close()


async def test_reminders_follow_each_learners_local_time(
    client: AsyncMongoClient[Any],
) -> None:
    async def in_tx(fn: Any) -> bool:
        async def run(tx: Transaction) -> bool:
            result: bool = await fn(MongoStore(tx.session))
            return result

        return await run_in_transaction(client, run)

    async def setup(store: Store) -> bool:
        now = datetime(2026, 3, 10, 8, tzinfo=UTC)
        for user, tz in (("vienna", "Europe/Vienna"), ("ny", "America/New_York")):
            await store.save_contact(user, {"email": f"{user}@example.org", "timezone": tz})
            await store.save_preferences(
                user, Preferences(timezone=tz, reminder_time=time(18)), now
            )
        await store.save_contact("played", {"email": "p@example.org"})
        await store.save_preferences(
            "played", Preferences(timezone="Europe/Vienna", reminder_time=time(18)), now
        )
        await store.mark_practised("played", "2026-03-10")
        return True

    await in_tx(setup)
    clock = Clock()

    async def tick(hour: int, minute: int = 0, day: int = 10) -> list[str]:
        clock.at = datetime(2026, 3, day, hour, minute, tzinfo=UTC)
        candidates = await MongoStore(None).reminder_users()
        await send_due_reminders(candidates, in_tx, clock, POLICY)
        rows = Notification.get_pymongo_collection().find({"kind": "practice_reminder"})
        return sorted([f"{r['user_id']}:{r['meta']['day']}" async for r in rows])

    assert await tick(16, 59) == []  # 17:59 in Vienna
    assert await tick(17, 0) == ["vienna:2026-03-10"]  # 18:00 in Vienna, 13:00 in New York
    assert await tick(21, 59) == ["vienna:2026-03-10"]  # still once; 17:59 in New York
    assert await tick(22, 0) == ["ny:2026-03-10", "vienna:2026-03-10"]
    assert await tick(17, 0, day=11) == [
        "ny:2026-03-10",
        "played:2026-03-11",
        "vienna:2026-03-10",
        "vienna:2026-03-11",
    ]
    rows = Notification.get_pymongo_collection().find({"kind": "practice_reminder"})
    assert {(r["channel"], r["status"], r["to"]) async for r in rows if r["user_id"] == "ny"} == {
        ("email", "queued", "ny@example.org")
    }


async def test_open_assignments_are_reminded_once_before_they_are_due(
    client: AsyncMongoClient[Any],
) -> None:
    async def in_tx(fn: Any) -> bool:
        async def run(tx: Transaction) -> bool:
            result: bool = await fn(MongoStore(tx.session))
            return result

        return await run_in_transaction(client, run)

    due = datetime(2026, 3, 12, 17, tzinfo=UTC)

    def created(assignment: str) -> AssignmentCreated:
        return AssignmentCreated(
            assignment_id=assignment,
            teacher_id="t1",
            student_id="s1",
            piece_id="minuet-in-g",
            target_score=0.8,
            due_at=due,
        )

    async def apply(event: Any) -> bool:
        async def handle(store: Store) -> bool:
            await on_event(event, store, datetime(2026, 3, 10, tzinfo=UTC), POLICY)
            return True

        return await in_tx(handle)

    await apply(
        UserRegistered(
            user_id="s1",
            email="s1@example.org",
            display_name="S",
            roles=["student"],
            locale="en",
            timezone="Europe/Vienna",
        )
    )
    await apply(created("open"))
    await apply(created("done"))
    await apply(
        AssignmentCompleted(
            assignment_id="done",
            teacher_id="t1",
            student_id="s1",
            piece_id="minuet-in-g",
            performance_id="p1",
            score=0.9,
        )
    )
    clock = Clock()

    async def tick(at: datetime) -> list[str]:
        clock.at = at
        dues = await MongoStore(None).assignments_due(at + timedelta(hours=24))
        await send_assignment_reminders(dues, in_tx, clock, POLICY)
        rows = Notification.get_pymongo_collection().find({"kind": "assignment_due"})
        return sorted([f"{r['source_event_id']}:{r['channel']}" async for r in rows])

    assert await tick(due - timedelta(hours=25)) == []
    assert await tick(due - timedelta(hours=23)) == ["assignment-due:open:email"]
    assert await tick(due - timedelta(hours=1)) == ["assignment-due:open:email"]
