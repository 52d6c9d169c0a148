"""The base every domain event derives from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


def utc_now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """A fact that happened in one service; its name is the routing key on `domain-events`."""

    # Unknown fields are ignored so that an older consumer reads an additively extended event.
    model_config = ConfigDict(frozen=True, extra="ignore")

    NAME: ClassVar[str] = ""

    id: UUID = Field(default_factory=uuid4)
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    correlation_id: str | None = None

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()
