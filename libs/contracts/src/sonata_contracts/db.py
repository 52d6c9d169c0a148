"""Events published by the db (library and practice record) service."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from sonata_contracts.base import Event


class PiecePublished(Event):
    """A piece (new or a new version) with its score in the engine's JSON note shape."""

    NAME: ClassVar[str] = "db.piece_published.v1"

    piece_id: str
    version: int
    title: str
    composer: str
    level: int
    owner_id: str | None  # None for the public catalogue
    visibility: Literal["public", "private"]
    score: dict[str, Any]


class PieceWithdrawn(Event):
    NAME: ClassVar[str] = "db.piece_withdrawn.v1"

    piece_id: str
    version: int
    owner_id: str | None
    reason: str


class PerformanceRecorded(Event):
    NAME: ClassVar[str] = "db.performance_recorded.v1"

    performance_id: str
    user_id: str
    piece_id: str
    piece_version: int
    overall_score: float
    duration_s: float
    played_at: AwareDatetime


class AchievementUnlocked(Event):
    NAME: ClassVar[str] = "db.achievement_unlocked.v1"

    user_id: str
    achievement: str
    title: str
    piece_id: str | None = None


class StreakChanged(Event):
    NAME: ClassVar[str] = "db.streak_changed.v1"

    user_id: str
    days: int
    previous_days: int
    on_day: date  # the learner's local calendar day
    status: Literal["extended", "broken", "at_risk"]


class MasteryReached(Event):
    NAME: ClassVar[str] = "db.mastery_reached.v1"

    user_id: str
    piece_id: str
    section: str | None = None
    threshold: float
    unlocked_piece_ids: list[str] = Field(default_factory=list)


class AssignmentCreated(Event):
    NAME: ClassVar[str] = "db.assignment_created.v1"

    assignment_id: str
    teacher_id: str
    student_id: str
    piece_id: str
    bars: tuple[int, int] | None = None
    hands: Literal["both", "left", "right"] = "both"
    tempo_percent: int = 100
    target_score: float
    due_at: AwareDatetime | None = None


class AssignmentCompleted(Event):
    NAME: ClassVar[str] = "db.assignment_completed.v1"

    assignment_id: str
    teacher_id: str
    student_id: str
    piece_id: str
    performance_id: str
    score: float
