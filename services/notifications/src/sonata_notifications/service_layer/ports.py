"""What the use cases need from the outside world; adapters implement these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sonata_notifications.domain.model import Channel, Preferences, Rendered, Status


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True)
class ContactView:
    user_id: str
    email: str | None
    phone: str | None
    timezone: str | None


@dataclass(frozen=True)
class NewNotification:
    user_id: str | None
    kind: str
    channel: Channel
    to: str | None
    status: Status
    error: str | None
    consent: str
    unsubscribe_token: str | None
    source_event_id: str
    meta: dict[str, Any]
    created_at: datetime
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class DueAssignment:
    assignment_id: str
    student_id: str
    piece_id: str
    due_at: datetime


class Store(Protocol):
    """The service's records, inside the caller's transaction."""

    async def contact(self, user_id: str) -> ContactView | None: ...
    async def save_contact(self, user_id: str, fields: dict[str, Any]) -> None: ...
    async def preferences(self, user_id: str) -> Preferences: ...
    async def save_preferences(self, user_id: str, prefs: Preferences, now: datetime) -> None: ...
    async def sms_blocked(self, phone: str) -> bool: ...
    async def block_sms(self, phone: str, now: datetime) -> None: ...
    async def unblock_sms(self, phone: str) -> None: ...
    async def users_with_phone(self, phone: str) -> list[str]: ...
    async def sent_since(
        self, user_id: str, channel: Channel, since: datetime, at_most: int
    ) -> int:
        """How many non-transactional notifications went to the user since then, up to at_most."""
        ...

    async def has_push(self, user_id: str) -> bool: ...
    async def recorded(self, source_event_id: str) -> bool: ...
    async def add(self, notification: NewNotification) -> bool:
        """False when that (event, kind, channel) was already recorded."""
        ...

    async def unsubscribe_target(self, token: str) -> tuple[str, str, Channel] | None: ...
    async def mark_practised(self, user_id: str, day: str) -> None: ...
    async def practised(self, user_id: str, day: str) -> bool: ...
    async def reminder_users(self) -> list[tuple[str, Preferences]]: ...
    async def erase_user(self, user_id: str) -> None: ...
    async def track_assignment(
        self, assignment_id: str, student_id: str, piece_id: str, due_at: datetime
    ) -> None: ...
    async def close_assignment(self, assignment_id: str) -> None: ...
    async def assignments_due(self, before: datetime) -> list[DueAssignment]: ...
    async def provider_status(self, provider_id: str) -> tuple[bool, str | None]:
        """(whether a notification has this provider id, its provider status)."""
        ...

    async def set_provider_status(
        self, provider_id: str, expected: str | None, status: str, error: str | None, now: datetime
    ) -> bool:
        """Compare-and-set; False when another callback moved it first."""
        ...

    async def hold_sms_status(
        self, provider_id: str, status: str, error_code: str | None, now: datetime
    ) -> None:
        """Keep a callback that came before its message's send was recorded."""
        ...

    async def held_sms_statuses(self, provider_id: str) -> list[tuple[str, str | None]]: ...
    async def drop_held_sms_statuses(self, provider_id: str) -> None: ...


@dataclass(frozen=True)
class Claimed:
    id: str
    user_id: str | None
    kind: str
    channel: Channel
    to: str | None
    meta: dict[str, Any]
    attempts: int  # including the one now under way
    unsubscribe_token: str | None
    source_event_id: str


class Deliveries(Protocol):
    """The queue of notifications waiting to go out; each outcome is one transaction."""

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Claimed]: ...
    async def sent(
        self, claimed: Claimed, provider_id: str, content: dict[str, str], now: datetime
    ) -> None: ...
    async def retry(self, claimed: Claimed, error: str, at: datetime, now: datetime) -> None: ...
    async def failed(self, claimed: Claimed, error: str, now: datetime) -> None: ...


@dataclass(frozen=True)
class Outgoing:
    user_id: str | None
    kind: str
    channel: Channel
    to: str | None
    rendered: Rendered
    # event id + channel: providers that take one deduplicate retries with it
    idempotency_key: str
    extra: dict[str, str] = field(default_factory=dict)


class Sender(Protocol):
    async def send(self, message: Outgoing) -> str:
        """Deliver to the provider; returns its message id. Raises a SendError."""
        ...


class Renderer(Protocol):
    def render(
        self, kind: str, channel: Channel, meta: dict[str, Any], unsubscribe_url: str | None
    ) -> Rendered: ...
