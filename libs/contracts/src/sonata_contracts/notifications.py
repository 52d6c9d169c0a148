"""Events published by the notifications service."""

from __future__ import annotations

from typing import ClassVar, Literal

from sonata_contracts.base import Event

Channel = Literal["email", "sms", "push"]


class NotificationSent(Event):
    NAME: ClassVar[str] = "notifications.notification_sent.v1"

    notification_id: str
    user_id: str | None
    kind: str
    channel: Channel
    source_event_id: str | None = None


class NotificationFailed(Event):
    NAME: ClassVar[str] = "notifications.notification_failed.v1"

    notification_id: str
    user_id: str | None
    kind: str
    channel: Channel
    error: str
    permanent: bool
    source_event_id: str | None = None
