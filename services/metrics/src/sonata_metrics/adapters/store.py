"""The KPI projection's storage in MongoDB: writes inside the consumer's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from sonata_metrics.adapters.documents import (
    DailyKpis,
    LearnerDay,
    LearnerZone,
    StreakState,
    SubscriptionState,
)
from sonata_metrics.domain.kpis import Streak, Subscription


class MongoKpiWriter:
    def __init__(self, session: AsyncClientSession) -> None:
        self.session = session

    async def add(self, day: date, counts: Mapping[str, float]) -> None:
        await DailyKpis.get_pymongo_collection().update_one(
            {"_id": day.isoformat()},
            {"$inc": {f"counts.{k}": v for k, v in counts.items()}},
            upsert=True,
            session=self.session,
        )

    async def mark_active(self, day: date, user_id: str) -> bool:
        key = {"day": day.isoformat(), "user_id": user_id}
        result = await LearnerDay.get_pymongo_collection().update_one(
            key, {"$setOnInsert": key}, upsert=True, session=self.session
        )
        return result.upserted_id is not None

    async def subscription(self, subscription_id: str) -> Subscription | None:
        row = await SubscriptionState.get_pymongo_collection().find_one(
            {"_id": subscription_id}, session=self.session
        )
        return _subscription(row) if row else None

    async def save_subscription(self, s: Subscription) -> None:
        await SubscriptionState.get_pymongo_collection().replace_one(
            {"_id": s.subscription_id},
            {
                "user_id": s.user_id,
                "plan": s.plan,
                "status": s.status,
                "as_of": s.as_of,
                "event_id": s.event_id,
            },
            upsert=True,
            session=self.session,
        )

    async def streak(self, user_id: str) -> Streak | None:
        row = await StreakState.get_pymongo_collection().find_one(
            {"_id": user_id}, session=self.session
        )
        return _streak(row) if row else None

    async def save_streak(self, s: Streak) -> None:
        await StreakState.get_pymongo_collection().replace_one(
            {"_id": s.user_id},
            {
                "days": s.days,
                "status": s.status,
                "on_day": s.on_day.isoformat(),
                "as_of": s.as_of,
                "event_id": s.event_id,
            },
            upsert=True,
            session=self.session,
        )

    async def save_timezone(self, user_id: str, timezone: str) -> None:
        await LearnerZone.get_pymongo_collection().replace_one(
            {"_id": user_id}, {"timezone": timezone}, upsert=True, session=self.session
        )

    async def forget_user(self, user_id: str) -> None:
        pseudonym = f"erased:{uuid.uuid4().hex}"
        for rows in (LearnerDay, SubscriptionState):
            await rows.get_pymongo_collection().update_many(
                {"user_id": user_id}, {"$set": {"user_id": pseudonym}}, session=self.session
            )
        for row in (StreakState, LearnerZone):
            await row.get_pymongo_collection().delete_one({"_id": user_id}, session=self.session)


class MongoKpiReader:
    async def counts(self, first: date, last: date) -> dict[date, dict[str, float]]:
        rows = DailyKpis.get_pymongo_collection().find(
            {"_id": {"$gte": first.isoformat(), "$lte": last.isoformat()}}
        )
        return {date.fromisoformat(r["_id"]): dict(r.get("counts", {})) async for r in rows}

    async def learner_days(self, first: date, last: date) -> list[tuple[date, str]]:
        rows = LearnerDay.get_pymongo_collection().find(
            {"day": {"$gte": first.isoformat(), "$lte": last.isoformat()}},
            {"_id": 0, "day": 1, "user_id": 1},
        )
        return [(date.fromisoformat(r["day"]), r["user_id"]) async for r in rows]

    async def subscriptions(self) -> list[Subscription]:
        rows = SubscriptionState.get_pymongo_collection().find({})
        return [_subscription(r) async for r in rows]

    async def streaks(self) -> list[Streak]:
        rows = StreakState.get_pymongo_collection().find({})
        return [_streak(r) async for r in rows]

    async def timezones(self, user_ids: list[str]) -> dict[str, str]:
        rows = LearnerZone.get_pymongo_collection().find({"_id": {"$in": user_ids}})
        return {r["_id"]: r["timezone"] async for r in rows}


def _subscription(row: Mapping[str, Any]) -> Subscription:
    return Subscription(
        subscription_id=row["_id"],
        user_id=row["user_id"],
        plan=row["plan"],
        status=row["status"],
        as_of=row["as_of"],
        event_id=row["event_id"],
    )


def _streak(row: Mapping[str, Any]) -> Streak:
    return Streak(
        user_id=row["_id"],
        days=row["days"],
        status=row["status"],
        on_day=date.fromisoformat(row["on_day"]),
        as_of=row["as_of"],
        event_id=row["event_id"],
    )
