from datetime import time
from typing import Self

from pydantic import AwareDatetime, Field, model_validator
from sonata_kit import ServiceSettings

from sonata_db.domain.plan import PlanLimits


class LibrarySettings(ServiceSettings):
    mongodb_db: str = "library"
    # An upload larger than this is refused before it is parsed.
    max_upload_bytes: int = Field(default=2_000_000, gt=0)
    # A score with more notes than this is refused (the engine aligns it on every take).
    max_score_notes: int = Field(default=20_000, gt=0)
    max_score_bars: int = Field(default=2_000, gt=0)
    # Score (0-100) three consecutive performances must reach for a piece to be mastered.
    mastery_threshold: float = Field(default=80.0, ge=0, le=100)
    invite_ttl_hours: int = Field(default=168, gt=0)
    # The link a teacher or parent hands out; {code} is replaced by the invite code.
    invite_url: str = "http://127.0.0.1:8080/join?code={code}"
    # Load the project's public-domain starting catalogue at startup (idempotent).
    seed_catalogue: bool = True
    # What a user payment never told db about (or whose paid plan lapsed) may do; payment's free
    # plan has the same limits.
    free_full_reports: bool = False
    free_teacher_seats: int = Field(default=0, ge=0)
    # From this local time on, a learner with a streak who has not practised today is told their
    # streak is at risk (once per local day).
    streak_at_risk_from: time = time(18, 0)
    streak_sweep_interval_s: float = Field(default=300.0, gt=0)
    # Tests start the sweep's clock here (it then runs at real speed); never set in production.
    streak_clock_start: AwareDatetime | None = None
    # Read answers are kept in process until a write they depend on commits here (exact with one
    # db process, as deployed); this bounds how long today's date rolling over, a plan running
    # out, or a write committed by another db process on the same database takes to show.
    # 0 turns the cache off.
    read_cache_ttl_s: float = Field(default=30.0, ge=0)
    read_cache_entries: int = Field(default=20_000, ge=0)
    read_cache_mb: int = Field(default=64, ge=1)

    def free_limits(self) -> PlanLimits:
        return PlanLimits(
            full_reports=self.free_full_reports, teacher_seats=self.free_teacher_seats
        )

    @model_validator(mode="after")
    def _no_shifted_clock_in_production(self) -> Self:
        if self.environment == "production" and self.streak_clock_start is not None:
            raise ValueError("STREAK_CLOCK_START is for development and tests only")
        return self
