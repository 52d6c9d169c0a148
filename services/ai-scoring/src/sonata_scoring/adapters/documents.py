from datetime import datetime
from typing import Any, ClassVar, Literal

from beanie import Document
from pymongo import ASCENDING, IndexModel


class EntitlementDoc(Document):
    """The entitlements projection: one row per user, the newest payment told us."""

    user_id: str
    plan: str
    scored_sessions_per_day: int | None
    coach: bool
    full_reports: bool
    teacher_seats: int
    valid_until: datetime | None
    version: int
    as_of: datetime

    class Settings:
        name = "entitlements"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("user_id", ASCENDING)], unique=True)]


class PieceCopy(Document):
    """ai-scoring's own copy of a published piece, so sessions never call db."""

    piece_id: str
    version: int
    title: str
    composer: str
    level: int
    owner_id: str | None
    visibility: Literal["public", "private"]
    score: dict[str, Any]
    withdrawn: bool = False

    class Settings:
        name = "pieces"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("piece_id", ASCENDING)], unique=True),
            IndexModel([("owner_id", ASCENDING)]),
        ]


class PieceGrant(Document):
    """A learner may play a private piece that is not theirs: a teacher assigned it to them."""

    piece_id: str
    user_id: str
    assignment_id: str

    class Settings:
        name = "piece_grants"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("piece_id", ASCENDING), ("user_id", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING)]),
        ]


class LiveSessionDoc(Document):
    """A live session: who, what and whether it is still live. What was applied is in its
    `LiveChunkDoc`s, so any process can rebuild the engine's state by replaying them."""

    session_id: str
    user_id: str
    piece_id: str
    piece_version: int
    options: dict[str, Any]
    status: Literal["live", "finished"]
    day: str  # UTC calendar day it started, for the free plan's daily count
    started_at: datetime
    last_seen_at: datetime  # refreshed by any frame (group commit), a few times per abandon period
    last_seq: int  # the start's seq; the chunks carry everything after it
    owner: str  # the connection driving it; a resume takes it over
    performance_id: str | None = None
    # the request id of the connection that started it: the sweeper's events carry it too
    correlation_id: str | None = None

    class Settings:
        name = "live_sessions"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("session_id", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING), ("day", ASCENDING)]),
            IndexModel([("status", ASCENDING), ("last_seen_at", ASCENDING)]),
        ]


class LiveChunkDoc(Document):
    """One checkpoint of a live session: the log rows applied since the one before, up to the
    acknowledged `last_seq`. Only ever inserted (one small document per group commit, never a
    rewrite of a growing one); chunk `n` of a session can be written once, so a connection that
    lost the session to a resume finds its next chunk taken and stops."""

    session_id: str
    n: int  # 0, 1, 2, ... in the order they were applied
    owner: str
    last_seq: int
    rows: list[list[Any]]
    at: datetime

    class Settings:
        name = "live_chunks"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("session_id", ASCENDING), ("n", ASCENDING)], unique=True)
        ]


class PerformanceDoc(Document):
    """A finished performance and the engine's final report."""

    performance_id: str
    session_id: str
    user_id: str
    piece_id: str
    piece_version: int
    started_at: datetime
    finished_at: datetime
    finished_by: Literal["learner", "abandoned"]
    overall: float
    subscores: dict[str, float | None]
    report: dict[str, Any]

    class Settings:
        name = "performances"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("performance_id", ASCENDING)], unique=True),
            IndexModel([("session_id", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING), ("finished_at", ASCENDING)]),
        ]


class LlmUsageDoc(Document):
    """One call (or refusal) of the coach's language model: tokens, latency and cost."""

    user_id: str
    purpose: Literal["feedback", "chat"]
    at: datetime
    outcome: str  # ok, timeout, rate_limited, malformed_output, over_budget, ...
    model: str | None
    input_tokens: int
    output_tokens: int
    latency_ms: float | None
    cost_usd: float

    class Settings:
        name = "llm_usage"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING), ("at", ASCENDING)])
        ]


class CoachConversationDoc(Document):
    """The coach chat's memory: the last few exchanges of one learner about one performance
    (`performance_id` None: questions about their practice in general)."""

    user_id: str
    performance_id: str | None
    turns: list[dict[str, str]]  # {"role": "user" | "assistant", "content": ...}, oldest first
    updated_at: datetime

    class Settings:
        name = "coach_conversations"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING), ("performance_id", ASCENDING)], unique=True)
        ]


class CoachUnlockDoc(Document):
    """A credit spent on the coach's feedback for one performance of one learner, as payment's
    ledger entry told us. Kept once it exists: a later refund does not take it back."""

    user_id: str
    performance_id: str
    entry_id: str  # payment's ledger entry that paid for it
    credits: int
    unlocked_at: datetime

    class Settings:
        name = "coach_unlocks"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING), ("performance_id", ASCENDING)], unique=True)
        ]
