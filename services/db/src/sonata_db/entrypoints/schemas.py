"""Request and response bodies of db's HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sonata_db.adapters.documents import Assignment, PieceDoc


class SectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60)
    first_bar: int = Field(ge=-10_000, le=100_000)
    last_bar: int = Field(ge=-10_000, le=100_000)


Hand = Literal["right", "left"]


class HandsIn(BaseModel):
    """A MIDI upload's hands: by track (counted from 1 in file order, the tempo track
    included) or by channel (1-16), each with notes mapped to right or left."""

    model_config = ConfigDict(extra="forbid")

    tracks: dict[Annotated[int, Field(ge=1, le=65_535)], Hand] | None = Field(
        default=None, max_length=64, examples=[{"2": "right", "3": "left"}]
    )
    channels: dict[Annotated[int, Field(ge=1, le=16)], Hand] | None = Field(
        default=None, max_length=16, examples=[{"1": "right", "2": "left"}]
    )

    @model_validator(mode="after")
    def _one_way(self) -> HandsIn:
        if (self.tracks is None) == (self.channels is None):
            raise ValueError("give either tracks or channels")
        if not (self.tracks or self.channels):
            raise ValueError("map at least one track or channel to a hand")
        return self


class PieceOut(BaseModel):
    piece_id: str
    version: int
    owner_id: str | None
    visibility: str
    title: str
    composer: str
    level: int
    tags: list[str]
    key: str
    time_signature: str
    duration_s: float
    bars: int
    first_bar: int
    last_bar: int
    sections: list[SectionIn]
    hands: list[str]
    source_format: str
    skill_path: str | None
    path_order: int | None
    updated_at: datetime

    @classmethod
    def of(cls, p: PieceDoc) -> PieceOut:
        return cls(
            **p.model_dump(include=set(cls.model_fields) - {"bars", "first_bar", "last_bar"}),
            bars=len(p.bars),
            first_bar=p.bars[0],
            last_bar=p.bars[-1],
        )


class PiecePage(BaseModel):
    items: list[PieceOut]
    total: int
    page: int
    page_size: int


class PieceChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    composer: str | None = Field(default=None, min_length=1, max_length=200)
    level: int | None = Field(default=None, ge=1, le=10)
    tags: list[str] | None = Field(default=None, max_length=16)
    key: str | None = Field(default=None, max_length=40)
    sections: list[SectionIn] | None = Field(default=None, max_length=64)


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(min_length=1, max_length=64, examples=["Europe/Paris"])
    weekly_goal_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)
    rest_days_per_week: int = Field(default=1, ge=0, le=6)


class ProfileOut(ProfileIn):
    user_id: str


class PerformancePage(BaseModel):
    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    relation: Literal["teacher", "parent"]


class InviteOut(BaseModel):
    code: str
    link: str
    relation: str
    expires_at: datetime


class LinkOut(BaseModel):
    guardian_id: str
    student_id: str
    relation: str
    since: datetime


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    student_id: str = Field(min_length=1, max_length=64)
    piece_id: str = Field(min_length=1, max_length=64)
    first_bar: int | None = Field(default=None, ge=-10_000, le=100_000)
    last_bar: int | None = Field(default=None, ge=-10_000, le=100_000)
    hands: Literal["both", "left", "right"] = "both"
    tempo_percent: int = Field(default=100, ge=10, le=200)
    target_score: float = Field(default=80.0, ge=0, le=100)
    due_at: datetime | None = Field(
        default=None,
        description="a date and time with its UTC offset; kept and answered in UTC",
        examples=["2026-05-01T18:00:00+02:00"],
    )

    @field_validator("due_at")
    @classmethod
    def _due_at_in_utc(cls, value: datetime | None) -> datetime | None:
        """A due date without an offset (a date alone, or a naive time) falls on a different
        moment in each timezone, so it is refused rather than guessed."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "due_at needs a time and a UTC offset, e.g. 2026-05-01T18:00:00+02:00 or "
                "2026-05-01T16:00:00Z; a date or time without an offset is ambiguous"
            )
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("due_at is outside the years 1-9999 in UTC") from exc


class AssignmentOut(BaseModel):
    assignment_id: str
    teacher_id: str
    student_id: str
    piece_id: str
    first_bar: int | None
    last_bar: int | None
    hands: str
    tempo_percent: int
    target_score: float
    due_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None
    best_score: float | None

    @classmethod
    def of(cls, a: Assignment) -> AssignmentOut:
        return cls(**a.model_dump(include=set(cls.model_fields)))
