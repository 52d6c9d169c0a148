"""Practice reminders: at the learner's chosen local time, on days without practice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sonata_notifications.domain.model import Preferences, reminder_day
from sonata_notifications.service_layer.handlers import Policy, queue
from sonata_notifications.service_layer.ports import Clock, DueAssignment, Store

InTransaction = Callable[[Callable[[Store], Awaitable[bool]]], Awaitable[bool]]


async def send_due_reminders(
    candidates: list[tuple[str, Preferences]],
    in_transaction: InTransaction,
    clock: Clock,
    policy: Policy,
) -> int:
    """Queue today's reminder for every learner whose time has come; returns how many.

    The record's key is (user, local day), so running this every few seconds, or on two
    replicas, still reminds each learner at most once a day. One transaction per learner.
    """
    now = clock.now()
    reminded = 0
    for user_id, prefs in candidates:
        day = reminder_day(now, prefs)
        if day is None:
            continue

        async def remind(store: Store, user_id: str = user_id, day: str = day.isoformat()) -> bool:
            key = f"reminder:{user_id}:{day}"
            if await store.recorded(key) or await store.practised(user_id, day):
                return False
            return (
                await queue(
                    store,
                    user_id=user_id,
                    kind_name="practice_reminder",
                    source_event_id=key,
                    meta={"day": day},
                    now=now,
                    policy=policy,
                )
                > 0
            )

        if await in_transaction(remind):
            reminded += 1
    return reminded


async def send_assignment_reminders(
    candidates: list[DueAssignment],
    in_transaction: InTransaction,
    clock: Clock,
    policy: Policy,
) -> int:
    """Remind each student once of an open assignment whose due date is near (the caller
    picks ``candidates`` due within its lead time); past-due ones are left alone."""
    now = clock.now()
    reminded = 0
    for due in candidates:
        if due.due_at <= now:
            continue

        async def remind(store: Store, due: DueAssignment = due) -> bool:
            key = f"assignment-due:{due.assignment_id}"
            if await store.recorded(key):
                return False
            return (
                await queue(
                    store,
                    user_id=due.student_id,
                    kind_name="assignment_due",
                    source_event_id=key,
                    meta={"piece_id": due.piece_id, "due_at": due.due_at.isoformat()},
                    now=now,
                    policy=policy,
                )
                > 0
            )

        if await in_transaction(remind):
            reminded += 1
    return reminded
