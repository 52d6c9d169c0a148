"""The service's records in MongoDB: the Store the use cases read and write through."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime, time
from typing import Any, cast

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError
from sonata_contracts.notifications import NotificationFailed, NotificationSent
from sonata_messaging.outbox import OUTBOX_COLLECTION

from sonata_notifications.adapters.documents import (
    AssignmentDue,
    Contact,
    HeldSmsStatus,
    Notification,
    PracticeDay,
    PreferenceRecord,
    PushDelivery,
    PushSubscription,
    SmsOptOut,
)
from sonata_notifications.domain.model import Channel, Preferences, QuietHours
from sonata_notifications.service_layer.ports import ContactView, DueAssignment, NewNotification


def _hhmm(value: str | None) -> time | None:
    return time.fromisoformat(value) if value else None


def preferences_from(row: dict[str, Any] | None, fallback_tz: str | None) -> Preferences:
    if row is None:
        return Preferences(timezone=fallback_tz or "UTC")
    start, end = _hhmm(row.get("quiet_start")), _hhmm(row.get("quiet_end"))
    return Preferences(
        timezone=row.get("timezone") or fallback_tz or "UTC",
        disabled=frozenset((k, cast(Channel, c)) for k, c in row.get("disabled", [])),
        enabled=frozenset((k, cast(Channel, c)) for k, c in row.get("enabled", [])),
        quiet_hours=QuietHours(start, end) if start and end else None,
        sms_consent=bool(row.get("sms_consent")),
        reminder_time=_hhmm(row.get("reminder_time")),
    )


def preferences_row(prefs: Preferences) -> dict[str, Any]:
    quiet = prefs.quiet_hours
    return {
        "timezone": prefs.timezone,
        "disabled": sorted([k, c] for k, c in prefs.disabled),
        "enabled": sorted([k, c] for k, c in prefs.enabled),
        "quiet_start": quiet.start.strftime("%H:%M") if quiet else None,
        "quiet_end": quiet.end.strftime("%H:%M") if quiet else None,
        "sms_consent": prefs.sms_consent,
        "reminder_time": prefs.reminder_time.strftime("%H:%M") if prefs.reminder_time else None,
    }


class MongoStore:
    def __init__(self, session: AsyncClientSession | None) -> None:
        self.s = session

    async def contact(self, user_id: str) -> ContactView | None:
        row = await Contact.get_pymongo_collection().find_one({"user_id": user_id}, session=self.s)
        if row is None:
            return None
        return ContactView(user_id, row.get("email"), row.get("phone"), row.get("timezone"))

    async def save_contact(self, user_id: str, fields: dict[str, Any]) -> None:
        await Contact.get_pymongo_collection().update_one(
            {"user_id": user_id}, {"$set": fields}, upsert=True, session=self.s
        )

    async def preferences(self, user_id: str) -> Preferences:
        row = await PreferenceRecord.get_pymongo_collection().find_one(
            {"user_id": user_id}, session=self.s
        )
        contact = await self.contact(user_id)
        return preferences_from(row, contact.timezone if contact else None)

    async def save_preferences(self, user_id: str, prefs: Preferences, now: datetime) -> None:
        await PreferenceRecord.get_pymongo_collection().update_one(
            {"user_id": user_id},
            {"$set": {**preferences_row(prefs), "updated_at": now}},
            upsert=True,
            session=self.s,
        )

    async def sms_blocked(self, phone: str) -> bool:
        found = await SmsOptOut.get_pymongo_collection().find_one({"phone": phone}, session=self.s)
        return found is not None

    async def block_sms(self, phone: str, now: datetime) -> None:
        await SmsOptOut.get_pymongo_collection().update_one(
            {"phone": phone}, {"$setOnInsert": {"at": now}}, upsert=True, session=self.s
        )

    async def unblock_sms(self, phone: str) -> None:
        await SmsOptOut.get_pymongo_collection().delete_one({"phone": phone}, session=self.s)

    async def users_with_phone(self, phone: str) -> list[str]:
        rows = Contact.get_pymongo_collection().find(
            {"phone": phone}, {"user_id": 1}, session=self.s
        )
        return [str(row["user_id"]) async for row in rows]

    async def sent_since(
        self, user_id: str, channel: Channel, since: datetime, at_most: int
    ) -> int:
        rows = Notification.get_pymongo_collection().find(
            {
                "user_id": user_id,
                "created_at": {"$gte": since},
                "channel": channel,
                "status": {"$in": ["queued", "sending", "sent"]},
                "consent": {"$ne": "transactional"},
            },
            {"_id": 1},
            session=self.s,
        )
        return len(await rows.limit(at_most).to_list())

    async def has_push(self, user_id: str) -> bool:
        found = await PushSubscription.get_pymongo_collection().find_one(
            {"user_id": user_id}, session=self.s
        )
        return found is not None

    async def recorded(self, source_event_id: str) -> bool:
        found = await Notification.get_pymongo_collection().find_one(
            {"source_event_id": source_event_id}, {"_id": 1}, session=self.s
        )
        return found is not None

    async def add(self, notification: NewNotification) -> bool:
        row = asdict(notification)
        row.update(attempts=0, content={}, updated_at=notification.created_at)
        # A duplicate key aborts the whole transaction: callers check ``recorded`` first, and
        # this only answers False outside one.
        try:
            await Notification.get_pymongo_collection().insert_one(row, session=self.s)
        except DuplicateKeyError:
            if self.s is not None and self.s.in_transaction:
                raise
            return False
        return True

    async def unsubscribe_target(self, token: str) -> tuple[str, str, Channel] | None:
        row = await Notification.get_pymongo_collection().find_one(
            {"unsubscribe_token": token}, session=self.s
        )
        if row is None or row.get("user_id") is None:
            return None
        return row["user_id"], row["kind"], row["channel"]

    async def mark_practised(self, user_id: str, day: str) -> None:
        await PracticeDay.get_pymongo_collection().update_one(
            {"user_id": user_id, "day": day}, {"$set": {"day": day}}, upsert=True, session=self.s
        )

    async def practised(self, user_id: str, day: str) -> bool:
        found = await PracticeDay.get_pymongo_collection().find_one(
            {"user_id": user_id, "day": day}, session=self.s
        )
        return found is not None

    async def reminder_users(self) -> list[tuple[str, Preferences]]:
        out = []
        cursor = PreferenceRecord.get_pymongo_collection().find(
            {"reminder_time": {"$ne": None}}, session=self.s
        )
        async for row in cursor:
            out.append((row["user_id"], preferences_from(row, None)))
        return out

    async def track_assignment(
        self, assignment_id: str, student_id: str, piece_id: str, due_at: datetime
    ) -> None:
        await AssignmentDue.get_pymongo_collection().update_one(
            {"assignment_id": assignment_id},
            {
                "$set": {"student_id": student_id, "piece_id": piece_id, "due_at": due_at},
                "$setOnInsert": {"open": True},
            },
            upsert=True,
            session=self.s,
        )

    async def close_assignment(self, assignment_id: str) -> None:
        # upsert: a completion that overtakes its creation still closes it
        await AssignmentDue.get_pymongo_collection().update_one(
            {"assignment_id": assignment_id},
            {"$set": {"open": False}},
            upsert=True,
            session=self.s,
        )

    async def assignments_due(self, before: datetime) -> list[DueAssignment]:
        rows = AssignmentDue.get_pymongo_collection().find(
            {"open": True, "due_at": {"$lte": before}}, session=self.s
        )
        return [
            DueAssignment(r["assignment_id"], r["student_id"], r["piece_id"], r["due_at"])
            async for r in rows
            if "student_id" in r
        ]

    async def erase_user(self, user_id: str) -> None:
        contact = await self.contact(user_id)
        notes = await Notification.get_pymongo_collection().find(
            {"user_id": user_id}, {"source_event_id": 1, "channel": 1, "provider_id": 1},
            session=self.s,
        ).to_list()  # fmt: skip
        # the browsers a push reached and the Twilio callbacks held for a text
        keys = [f"{n['source_event_id']}:push" for n in notes if n["channel"] == "push"]
        sids = [n["provider_id"] for n in notes if n.get("provider_id")]
        await PushDelivery.get_pymongo_collection().delete_many(
            {"key": {"$in": keys}}, session=self.s
        )
        await HeldSmsStatus.get_pymongo_collection().delete_many(
            {"provider_id": {"$in": sids}}, session=self.s
        )
        for document in (Contact, Notification, PreferenceRecord, PushSubscription, PracticeDay):
            await document.get_pymongo_collection().delete_many(
                {"user_id": user_id}, session=self.s
            )
        await AssignmentDue.get_pymongo_collection().delete_many(
            {"student_id": user_id}, session=self.s
        )
        if contact is not None and contact.phone:
            await SmsOptOut.get_pymongo_collection().delete_many(
                {"phone": contact.phone}, session=self.s
            )
        # Our published events about the user's notifications; one still waiting for the relay
        # is left to go out, and its consumers erase it on their side.
        about_user = re.escape(f'"user_id":{json.dumps(user_id)}')
        await (
            Notification.get_pymongo_collection()
            .database[OUTBOX_COLLECTION]
            .delete_many(
                {
                    "name": {"$in": [NotificationSent.NAME, NotificationFailed.NAME]},
                    "published_at": {"$ne": None},
                    "body": {"$regex": about_user},
                },
                session=self.s,
            )
        )

    async def provider_status(self, provider_id: str) -> tuple[bool, str | None]:
        row = await Notification.get_pymongo_collection().find_one(
            {"provider_id": provider_id}, {"provider_status": 1}, session=self.s
        )
        return (row is not None, row.get("provider_status") if row else None)

    async def hold_sms_status(
        self, provider_id: str, status: str, error_code: str | None, now: datetime
    ) -> None:
        await HeldSmsStatus.get_pymongo_collection().insert_one(
            {"provider_id": provider_id, "status": status, "error_code": error_code,
             "received_at": now},
            session=self.s,
        )  # fmt: skip

    async def held_sms_statuses(self, provider_id: str) -> list[tuple[str, str | None]]:
        rows = HeldSmsStatus.get_pymongo_collection().find(
            {"provider_id": provider_id}, session=self.s
        )
        return [(r["status"], r.get("error_code")) async for r in rows]

    async def drop_held_sms_statuses(self, provider_id: str) -> None:
        await HeldSmsStatus.get_pymongo_collection().delete_many(
            {"provider_id": provider_id}, session=self.s
        )

    async def set_provider_status(
        self, provider_id: str, expected: str | None, status: str, error: str | None, now: datetime
    ) -> bool:
        changes: dict[str, Any] = {"provider_status": status, "updated_at": now}
        if error is not None:
            changes.update(status="failed", error=error)
        result = await Notification.get_pymongo_collection().update_one(
            {"provider_id": provider_id, "provider_status": expected},
            {"$set": changes},
            session=self.s,
        )
        return result.modified_count == 1
