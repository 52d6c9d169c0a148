from datetime import datetime
from typing import Any, ClassVar

from beanie import Document
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel


class SectionDoc(BaseModel):
    name: str
    first_bar: int
    last_bar: int


class PieceDoc(Document):
    """The current version of a piece; the score is in the engine's JSON shape."""

    piece_id: str
    version: int
    owner_id: str | None  # None: the public catalogue
    visibility: str  # public | private
    title: str
    composer: str
    level: int
    tags: list[str]
    key: str
    time_signature: str
    duration_s: float
    bars: list[int]  # printed bar numbers, in order
    sections: list[SectionDoc]
    hands: list[str]  # right / left / unknown, those the score has
    source_format: str
    skill_path: str | None = None
    path_order: int | None = None
    created_at: datetime
    updated_at: datetime

    class Settings:
        name = "pieces"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("piece_id", ASCENDING)], unique=True),
            IndexModel([("visibility", ASCENDING), ("level", ASCENDING), ("title", ASCENDING)]),
            IndexModel([("owner_id", ASCENDING)]),
            IndexModel([("skill_path", ASCENDING), ("path_order", ASCENDING)]),
        ]


class PieceVersion(Document):
    """Each published version's score, kept so old performances still draw against theirs."""

    piece_id: str
    version: int
    # The piece's owner (None: the catalogue); kept after a withdrawal, so the owner's export
    # and erasure still find the versions their students' takes draw against.
    owner_id: str | None = None
    score: dict[str, Any]

    class Settings:
        name = "piece_versions"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("piece_id", ASCENDING), ("version", ASCENDING)], unique=True),
            IndexModel([("owner_id", ASCENDING)]),
        ]


class PerformanceRecord(Document):
    """One scored performance, as ai-scoring reported it."""

    performance_id: str
    session_id: str
    user_id: str
    piece_id: str
    piece_version: int
    started_at: datetime
    finished_at: datetime
    local_day: str | None = None  # ISO date: the learner's calendar day when it was recorded
    duration_s: float
    overall_score: float
    subscores: dict[str, float]
    bar_accuracy: dict[str, float] = Field(default_factory=dict)  # printed bar -> 0..1
    section_scores: dict[str, float] = Field(default_factory=dict)

    class Settings:
        name = "performances"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("performance_id", ASCENDING)], unique=True),
            IndexModel(
                [("user_id", ASCENDING), ("piece_id", ASCENDING), ("finished_at", DESCENDING)]
            ),
            IndexModel([("user_id", ASCENDING), ("finished_at", DESCENDING)]),
        ]


class PerformanceReport(Document):
    """The engine's full report of one performance, apart so history and progress read light."""

    performance_id: str
    user_id: str
    report: dict[str, Any]

    class Settings:
        name = "performance_reports"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("performance_id", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING)]),
        ]


class LearnerProfile(Document):
    user_id: str
    timezone: str = "UTC"
    weekly_goal_minutes: int = 60
    rest_days_per_week: int = 1

    class Settings:
        name = "profiles"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("user_id", ASCENDING)], unique=True)]


class Unlock(Document):
    """Something a learner earned once: a mastered piece or an achievement."""

    user_id: str
    kind: str  # mastery | achievement
    key: str  # the piece id, or the achievement's name
    at: datetime

    class Settings:
        name = "unlocks"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("user_id", ASCENDING), ("kind", ASCENDING), ("key", ASCENDING)], unique=True
            )
        ]


class Invite(Document):
    code: str
    owner_id: str
    relation: str  # teacher | parent
    expires_at: datetime
    used_by: str | None = None

    class Settings:
        name = "invites"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("code", ASCENDING)], unique=True),
            IndexModel([("owner_id", ASCENDING)]),
        ]


class Link(Document):
    """A teacher's student or a parent's child."""

    guardian_id: str
    student_id: str
    relation: str  # teacher | parent
    since: datetime

    class Settings:
        name = "links"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("guardian_id", ASCENDING), ("student_id", ASCENDING), ("relation", ASCENDING)],
                unique=True,
            ),
            IndexModel([("student_id", ASCENDING)]),
        ]


class Assignment(Document):
    assignment_id: str
    teacher_id: str
    student_id: str
    piece_id: str
    first_bar: int | None = None
    last_bar: int | None = None
    hands: str = "both"
    tempo_percent: int = 100
    target_score: float
    due_at: datetime | None = None
    created_at: datetime
    completed_at: datetime | None = None
    completed_by: str | None = None  # the performance id
    best_score: float | None = None

    class Settings:
        name = "assignments"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("assignment_id", ASCENDING)], unique=True),
            IndexModel([("student_id", ASCENDING), ("piece_id", ASCENDING)]),
            IndexModel([("teacher_id", ASCENDING)]),
        ]


class EntitlementDoc(Document):
    """The user's plan as payment last decided it (the newest by as_of, version)."""

    user_id: str
    plan: str
    full_reports: bool
    teacher_seats: int
    valid_until: datetime | None = None
    version: int
    as_of: datetime
    seats_claimed: int = 0  # bumped by every accepted student, so concurrent ones conflict

    class Settings:
        name = "entitlements"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("user_id", ASCENDING)], unique=True)]


class StreakNotice(Document):
    """A streak-at-risk notice already published for a learner's local day."""

    user_id: str
    on_day: str  # ISO date, the learner's calendar day
    at: datetime

    class Settings:
        name = "streak_notices"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING), ("on_day", ASCENDING)], unique=True)
        ]


DOCUMENTS: list[type[Document]] = [
    PieceDoc,
    PieceVersion,
    PerformanceRecord,
    PerformanceReport,
    LearnerProfile,
    Unlock,
    Invite,
    Link,
    Assignment,
    EntitlementDoc,
    StreakNotice,
]
