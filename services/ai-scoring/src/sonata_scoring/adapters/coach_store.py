"""The coach's ledger and the tools it reads with, both fenced to one user."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sonata_scoring.adapters.documents import (
    CoachConversationDoc,
    LiveSessionDoc,
    LlmUsageDoc,
    PerformanceDoc,
)
from sonata_scoring.metrics import COACH_COST_USD, COACH_TOKENS_INPUT, COACH_TOKENS_OUTPUT
from sonata_scoring.service_layer.coach import (
    GetPerformanceArgs,
    ListPerformancesArgs,
    ListSessionsArgs,
    NoArgs,
    Turn,
    Usage,
    facts_of,
)


class MongoUsageLedger:
    async def spent_since(self, user_id: str, since: datetime) -> float:
        rows = LlmUsageDoc.get_pymongo_collection().aggregate(
            [
                {"$match": {"user_id": user_id, "at": {"$gte": since}}},
                {"$group": {"_id": None, "usd": {"$sum": "$cost_usd"}}},
            ]
        )
        async for row in await rows:
            return float(row["usd"])
        return 0.0

    async def record(
        self, user_id: str, purpose: str, usage: Usage | None, outcome: str, at: datetime
    ) -> None:
        kind: Literal["feedback", "chat"] = "chat" if purpose == "chat" else "feedback"
        await LlmUsageDoc(
            user_id=user_id,
            purpose=kind,
            at=at,
            outcome=outcome,
            model=usage.model if usage else None,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            latency_ms=usage.latency_ms if usage else None,
            cost_usd=usage.cost_usd if usage else 0.0,
        ).insert()
        if usage is not None:  # the same tokens and cost on /metrics
            COACH_TOKENS_INPUT.inc(usage.input_tokens)
            COACH_TOKENS_OUTPUT.inc(usage.output_tokens)
            COACH_COST_USD.inc(usage.cost_usd)


class MongoConversations:
    """Conversations bounded to the last `keep` turns (a question or an answer each)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep

    async def turns(self, user_id: str, performance_id: str | None) -> list[Turn]:
        doc = await CoachConversationDoc.get_pymongo_collection().find_one(
            {"user_id": user_id, "performance_id": performance_id}, {"turns": 1}
        )
        rows = (doc or {}).get("turns", [])[-self.keep :] if self.keep else []
        return [Turn("user" if t["role"] == "user" else "assistant", t["content"]) for t in rows]

    async def append(
        self, user_id: str, performance_id: str | None, turns: list[Turn], at: datetime
    ) -> None:
        await CoachConversationDoc.get_pymongo_collection().update_one(
            {"user_id": user_id, "performance_id": performance_id},
            {
                "$push": {
                    "turns": {
                        "$each": [{"role": t.role, "content": t.content} for t in turns],
                        "$slice": -self.keep,
                    }
                },
                "$set": {"updated_at": at},
            },
            upsert=True,
        )


class OwnRecords:
    """The chat's tools. The user id is fixed here, server side: whatever the model asks,
    every query is filtered by it, so no prompt reaches another learner's data."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id

    async def list_my_performances(self, args: ListPerformancesArgs) -> dict[str, Any]:
        cursor = (
            PerformanceDoc.get_pymongo_collection()
            .find(
                {"user_id": self.user_id},
                {"performance_id": 1, "piece_id": 1, "overall": 1, "finished_at": 1, "_id": 0},
            )
            .sort("finished_at", -1)
        )
        rows = [
            {**r, "finished_at": r["finished_at"].isoformat()}
            for r in await cursor.to_list(args.limit)
        ]
        return {"performances": rows}

    async def get_performance(self, args: GetPerformanceArgs) -> dict[str, Any]:
        doc = await PerformanceDoc.get_pymongo_collection().find_one(
            {"user_id": self.user_id, "performance_id": args.performance_id}
        )
        if doc is None:
            return {"error": "no such performance of yours"}
        return {"performance_id": doc["performance_id"], "piece_id": doc["piece_id"],
                "report": facts_of(doc["report"])}  # fmt: skip

    async def get_progress(self, args: NoArgs) -> dict[str, Any]:
        cursor = (
            PerformanceDoc.get_pymongo_collection()
            .find({"user_id": self.user_id}, {"piece_id": 1, "overall": 1, "finished_at": 1})
            .sort("finished_at", 1)
        )
        progress: dict[str, list[float]] = {}
        for r in await cursor.to_list(500):
            progress.setdefault(r["piece_id"], []).append(round(float(r["overall"]), 1))
        return {"overall_by_piece": progress}

    async def list_my_sessions(self, args: ListSessionsArgs) -> dict[str, Any]:
        cursor = (
            LiveSessionDoc.get_pymongo_collection()
            .find(
                {"user_id": self.user_id},
                {
                    "session_id": 1,
                    "piece_id": 1,
                    "status": 1,
                    "started_at": 1,
                    "options": 1,
                    "performance_id": 1,
                    "_id": 0,
                },
            )
            .sort("started_at", -1)
        )
        rows = []
        for r in await cursor.to_list(args.limit):
            o = r.get("options", {})
            rows.append(
                {
                    "session_id": r["session_id"],
                    "piece_id": r["piece_id"],
                    "started_at": r["started_at"].isoformat(),
                    "status": r["status"],
                    "performance_id": r.get("performance_id"),
                    "bars": {"first": o.get("first_bar"), "last": o.get("last_bar")},
                    "hands": o.get("hands"),
                    "tempo_percent": o.get("tempo_percent"),
                    "mode": o.get("mode"),
                }
            )
        return {"sessions": rows}
