"""The streak-at-risk sweep: learners whose streak ends unless they practise before midnight."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pymongo.errors import DuplicateKeyError
from sonata_contracts.db import StreakChanged
from sonata_messaging import Transaction

from sonata_db.adapters.documents import PerformanceRecord, StreakNotice
from sonata_db.domain.progress import streak_at_risk
from sonata_db.service_layer.practice import profile_of

# With at most 6 rest days per ISO week a living streak has a practice day in the last 13 days;
# one more day covers the widest timezone offset.
LOOKBACK = timedelta(days=15)

RunInTransaction = Callable[[Callable[[Transaction], Awaitable[bool]]], Awaitable[bool]]


async def _recent_learners(now: datetime) -> list[str]:
    ids = await PerformanceRecord.get_pymongo_collection().distinct(
        "user_id", {"finished_at": {"$gte": now - LOOKBACK}}
    )
    return sorted(str(i) for i in ids)


async def _practice_days(user_id: str) -> list[date]:
    days = await PerformanceRecord.get_pymongo_collection().distinct(
        "local_day", {"user_id": user_id}
    )
    return [date.fromisoformat(d) for d in days if isinstance(d, str)]


async def _warn(tx: Transaction, user_id: str, today: date, days: int, now: datetime) -> bool:
    # The unique (user, day) row makes a second sweep, or a second replica, publish nothing.
    await StreakNotice(user_id=user_id, on_day=today.isoformat(), at=now).insert(session=tx.session)
    await tx.publish(
        StreakChanged(
            user_id=user_id, days=days, previous_days=days, on_day=today, status="at_risk"
        )
    )
    return True


async def sweep_streaks(run: RunInTransaction, now: datetime, warn_from: time) -> list[str]:
    """Publish `at_risk` once per learner and local day, from ``warn_from`` in their zone on,
    when today has no practice yet and no rest day would bridge it. Returns who was warned."""
    warned: list[str] = []
    for user_id in await _recent_learners(now):
        profile = await profile_of(user_id)
        local = now.astimezone(ZoneInfo(profile.timezone))
        if local.time() < warn_from:
            continue
        today = local.date()
        if await StreakNotice.find_one(
            StreakNotice.user_id == user_id, StreakNotice.on_day == today.isoformat()
        ):
            continue
        days = streak_at_risk(await _practice_days(user_id), today, profile.rest_days_per_week)
        if days is None:
            continue

        async def warn(
            tx: Transaction, uid: str = user_id, day: date = today, d: int = days
        ) -> bool:
            return await _warn(tx, uid, day, d, now)

        try:
            await run(warn)
        except DuplicateKeyError:
            continue
        warned.append(user_id)
    return warned
