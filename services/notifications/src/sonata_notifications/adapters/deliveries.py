"""The delivery queue in MongoDB: claim with a lease, record outcomes with their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

from bson import ObjectId
from prometheus_client import Counter
from pymongo import ASCENDING, AsyncMongoClient
from sonata_contracts.notifications import NotificationFailed, NotificationSent
from sonata_messaging import Outbox, Transaction, run_in_transaction

from sonata_notifications.adapters.documents import Notification
from sonata_notifications.domain.model import Channel
from sonata_notifications.service_layer.ports import Claimed

SENT = Counter(
    "sonata_notifications_sent_total", "Notifications handed to their provider.", ["channel"]
)
FAILED = Counter(
    "sonata_notifications_failed_total",
    "Notifications that failed for good, by channel and reason "
    "(rejected, retries_exhausted, not_configured, internal_error).",
    ["channel", "reason"],
)
FAILURE_REASONS = ("rejected", "retries_exhausted", "not_configured", "internal_error")
# Every series exists from the start, so a rate reads 0 rather than nothing before the first.
for _channel in get_args(Channel):
    SENT.labels(_channel)
    for _reason in FAILURE_REASONS:
        FAILED.labels(_channel, _reason)


def failure_reason(error: str) -> str:
    """A bounded label for the error texts service_layer.delivery records."""
    if error.startswith("gave up after"):
        return "retries_exhausted"
    if error.endswith("channel is not configured"):
        return "not_configured"
    if error.startswith("unexpected error"):
        return "internal_error"
    return "rejected"


class MongoDeliveries:
    def __init__(self, client: AsyncMongoClient[Any], outbox: Outbox) -> None:
        self.client = client
        self.outbox = outbox
        self.rows = Notification.get_pymongo_collection()

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
        # Find candidates through the (status, next_attempt_at) index, then claim each with a
        # compare-and-set on its status and attempts: two replicas never both win a row.
        due = (
            self.rows.find({"status": "queued", "next_attempt_at": {"$lte": now}})
            .sort("next_attempt_at", ASCENDING)
            .limit(limit)
        )
        # A "sending" row whose lease ran out belongs to a worker that died mid-send.
        stale = self.rows.find({"status": "sending", "lease_until": {"$lt": now}}).limit(limit)
        claimed = []
        for row in [*await due.to_list(), *await stale.to_list()]:
            attempts = int(row.get("attempts", 0))
            result = await self.rows.update_one(
                {"_id": row["_id"], "status": row["status"], "attempts": attempts},
                {
                    "$set": {"status": "sending", "lease_until": lease_until, "updated_at": now},
                    "$inc": {"attempts": 1},
                },
            )
            if result.modified_count == 1:
                claimed.append(_claimed(row, attempts + 1))
        return claimed

    async def _finish(self, claimed: Claimed, changes: dict[str, Any], event: Any) -> bool:
        """Record the outcome; False when the row was no longer ours (lease lost)."""

        async def record(tx: Transaction) -> bool:
            result = await self.rows.update_one(
                {"_id": ObjectId(claimed.id), "status": "sending", "attempts": claimed.attempts},
                {"$set": changes, "$unset": {"lease_until": ""}},
                session=tx.session,
            )
            if result.modified_count and event is not None:
                await tx.publish(event)
            return bool(result.modified_count)

        return await run_in_transaction(self.client, record, outbox=self.outbox)

    async def sent(
        self, claimed: Claimed, provider_id: str, content: dict[str, str], now: datetime
    ) -> None:
        changes = {
            "status": "sent",
            "provider_id": provider_id,
            "content": content,
            "error": None,
            "sent_at": now,
            "updated_at": now,
        }
        event = NotificationSent(
            notification_id=claimed.id,
            user_id=claimed.user_id,
            kind=claimed.kind,
            channel=claimed.channel,
            source_event_id=claimed.source_event_id,
        )
        if await self._finish(claimed, changes, event):
            SENT.labels(claimed.channel).inc()

    async def retry(self, claimed: Claimed, error: str, at: datetime, now: datetime) -> None:
        changes = {"status": "queued", "error": error, "next_attempt_at": at, "updated_at": now}
        await self._finish(claimed, changes, None)

    async def failed(self, claimed: Claimed, error: str, now: datetime) -> None:
        changes = {"status": "failed", "error": error, "updated_at": now}
        event = NotificationFailed(
            notification_id=claimed.id,
            user_id=claimed.user_id,
            kind=claimed.kind,
            channel=claimed.channel,
            error=error,
            permanent=True,
            source_event_id=claimed.source_event_id,
        )
        if await self._finish(claimed, changes, event):
            FAILED.labels(claimed.channel, failure_reason(error)).inc()


def _claimed(row: dict[str, Any], attempts: int) -> Claimed:
    return Claimed(
        id=str(row["_id"]),
        user_id=row.get("user_id"),
        kind=row["kind"],
        channel=row["channel"],
        to=row.get("to"),
        meta=row.get("meta") or {},
        attempts=attempts,
        unsubscribe_token=row.get("unsubscribe_token"),
        source_event_id=row["source_event_id"],
    )
