"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sonata_notifications.adapters.push import key_problem
from sonata_notifications.domain.model import KINDS, valid_timezone

HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
ChannelName = Literal["email", "sms", "push"]


class QuietHoursIn(BaseModel):
    start: str = Field(examples=["21:30"])
    end: str = Field(examples=["07:30"])

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError("use 24-hour HH:MM")
        return value


class PreferencesIn(BaseModel):
    """Only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(default=None, examples=["Europe/Vienna"])
    quiet_hours: QuietHoursIn | None = None
    clear_quiet_hours: bool = False
    reminder_time: str | None = Field(default=None, examples=["18:00"])
    clear_reminder: bool = False
    sms_consent: bool | None = None
    # kind -> channel -> on/off
    channels: dict[str, dict[ChannelName, bool]] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is not None and not valid_timezone(value):
            raise ValueError(f"unknown IANA timezone {value!r}")
        return value

    @field_validator("reminder_time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not HHMM.match(value):
            raise ValueError("use 24-hour HH:MM")
        return value

    @field_validator("channels")
    @classmethod
    def _kinds(
        cls, value: dict[str, dict[ChannelName, bool]]
    ) -> dict[str, dict[ChannelName, bool]]:
        unknown = sorted(set(value) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown notification kinds: {', '.join(unknown)}")
        problems = []
        for name, per_channel in sorted(value.items()):
            kind = KINDS[name]
            if kind.transactional:
                problems.append(f"{name} is an account or billing message and cannot be turned off")
                continue
            absent = sorted(set(per_channel) - set(kind.channels))
            if absent:
                problems.append(
                    f"{name} is not sent by {', '.join(absent)} (only {', '.join(kind.channels)})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return value


class PreferencesOut(BaseModel):
    timezone: str
    quiet_hours: QuietHoursIn | None
    reminder_time: str | None
    sms_consent: bool
    channels: dict[str, dict[str, bool]]


class PushKeys(BaseModel):
    """RFC 8291: the browser's P-256 public key and its 16-byte authentication secret."""

    p256dh: str = Field(max_length=256)
    auth: str = Field(max_length=64)

    @model_validator(mode="after")
    def _usable(self) -> Self:
        problem = key_problem(self.p256dh, self.auth)
        if problem is not None:
            raise ValueError(problem)
        return self


class PushSubscriptionIn(BaseModel):
    """The browser's PushSubscription.toJSON()."""

    # https only, except loopback outside production (checked by the route)
    endpoint: str = Field(pattern=r"^https?://", max_length=2048)
    keys: PushKeys
    expirationTime: Any = None  # noqa: N815 - the browser's own field name


class NotificationOut(BaseModel):
    id: str
    kind: str
    channel: str
    to: str | None
    status: str
    error: str | None
    consent: str
    # what the provider last reported (Twilio: queued, sent, delivered, ...); never backwards
    provider_status: str | None = None
    attempts: int
    created_at: datetime
    sent_at: datetime | None
