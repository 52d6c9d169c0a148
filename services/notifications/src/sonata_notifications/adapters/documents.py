from datetime import datetime
from typing import Any, ClassVar, Literal

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, IndexModel


class Contact(Document):
    """How to reach a user, from auth's events."""

    user_id: str
    email: str | None = None
    phone: str | None = None
    display_name: str | None = None
    locale: str | None = None
    timezone: str | None = None

    class Settings:
        name = "contacts"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING)], unique=True),
            IndexModel([("phone", ASCENDING)], sparse=True),  # STOP and START find the users
        ]


class Notification(Document):
    """One message to one person on one channel, created from one event."""

    user_id: str | None
    kind: str
    channel: Literal["email", "sms", "push"]
    to: str | None  # resolved from the contact when the event carries no address
    status: Literal["queued", "sending", "sent", "failed", "suppressed"] = "queued"
    error: str | None = None
    consent: str = "transactional"
    unsubscribe_token: str | None = None
    source_event_id: str
    meta: dict[str, Any] = Field(default_factory=dict)
    content: dict[str, str] = Field(default_factory=dict)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    provider_id: str | None = None
    provider_status: str | None = None
    created_at: datetime
    updated_at: datetime | None = None
    sent_at: datetime | None = None

    class Settings:
        name = "notifications"
        indexes: ClassVar[list[IndexModel]] = [
            # One notification per (event, kind, channel): a replayed event never sends twice.
            IndexModel(
                [("source_event_id", ASCENDING), ("kind", ASCENDING), ("channel", ASCENDING)],
                unique=True,
            ),
            IndexModel([("user_id", ASCENDING), ("created_at", ASCENDING)]),
            IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
            IndexModel([("unsubscribe_token", ASCENDING)], sparse=True),
            IndexModel([("provider_id", ASCENDING)], sparse=True),
        ]


class PreferenceRecord(Document):
    user_id: str
    timezone: str | None = None
    disabled: list[list[str]] = Field(default_factory=list)  # [kind, channel] pairs
    enabled: list[list[str]] = Field(default_factory=list)
    quiet_start: str | None = None  # "HH:MM" local
    quiet_end: str | None = None
    sms_consent: bool = False
    reminder_time: str | None = None
    updated_at: datetime

    class Settings:
        name = "preferences"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING)], unique=True),
            IndexModel([("reminder_time", ASCENDING)], sparse=True),
        ]


class PushSubscription(Document):
    user_id: str
    endpoint: str
    p256dh: str
    auth: str
    created_at: datetime

    class Settings:
        name = "push_subscriptions"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("endpoint", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING)]),
        ]


class PushDelivery(Document):
    """A browser that already took one notification: a retry after another browser's transient
    failure skips it. Kept a week, longer than any retry runs."""

    key: str  # the notification's idempotency key
    endpoint: str
    at: datetime

    class Settings:
        name = "push_deliveries"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("key", ASCENDING), ("endpoint", ASCENDING)], unique=True),
            IndexModel([("at", ASCENDING)], expireAfterSeconds=7 * 86_400),
        ]


class PracticeDay(Document):
    """A local calendar day on which the learner played: no reminder that day."""

    user_id: str
    day: str  # ISO date, the learner's local calendar

    class Settings:
        name = "practice_days"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING), ("day", ASCENDING)], unique=True)
        ]


class SmsOptOut(Document):
    """A number that replied STOP; nothing goes to it until it replies START."""

    phone: str
    user_id: str | None = None
    at: datetime

    class Settings:
        name = "sms_opt_outs"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("phone", ASCENDING)], unique=True)]


class HeldSmsStatus(Document):
    """A Twilio status callback for a message whose send is not recorded yet: applied when it
    is, forgotten after a day if it never is."""

    provider_id: str
    status: str
    error_code: str | None = None
    received_at: datetime

    class Settings:
        name = "sms_held_statuses"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("provider_id", ASCENDING)]),
            IndexModel([("received_at", ASCENDING)], expireAfterSeconds=86_400),
        ]


class AssignmentDue(Document):
    """An open assignment with a due date: the scheduler reminds the student before it."""

    assignment_id: str
    student_id: str
    piece_id: str
    due_at: datetime
    open: bool = True

    class Settings:
        name = "assignment_dues"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("assignment_id", ASCENDING)], unique=True),
            IndexModel([("open", ASCENDING), ("due_at", ASCENDING)]),
            IndexModel([("student_id", ASCENDING)]),
        ]


DOCUMENTS: list[type[Document]] = [
    AssignmentDue,
    Contact,
    HeldSmsStatus,
    Notification,
    PreferenceRecord,
    PushDelivery,
    PushSubscription,
    PracticeDay,
    SmsOptOut,
]
