"""Events published by the ai-scoring service (producer name `ai_scoring`)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AwareDatetime, Field

from sonata_contracts.base import Event


class SessionStarted(Event):
    NAME: ClassVar[str] = "ai_scoring.session_started.v1"

    session_id: str
    user_id: str
    piece_id: str
    piece_version: int
    started_at: AwareDatetime
    options: dict[str, Any] = Field(default_factory=dict)


class PerformanceScored(Event):
    """The final report of one performance; `db` keeps the record from it."""

    NAME: ClassVar[str] = "ai_scoring.performance_scored.v1"

    performance_id: str
    session_id: str
    user_id: str
    piece_id: str
    piece_version: int
    started_at: AwareDatetime
    finished_at: AwareDatetime
    duration_s: float
    overall_score: float
    subscores: dict[str, float]
    report: dict[str, Any]
