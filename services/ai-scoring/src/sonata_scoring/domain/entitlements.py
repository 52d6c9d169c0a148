"""What a user may do, as last told by payment. Pure: the clock is passed in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

FREE_PLAN = "free"


@dataclass(frozen=True)
class Limits:
    scored_sessions_per_day: int | None  # None = unlimited
    coach: bool
    full_reports: bool
    teacher_seats: int


@dataclass(frozen=True)
class Entitlement:
    user_id: str
    plan: str
    limits: Limits
    valid_until: datetime | None
    version: int
    as_of: datetime

    def supersedes(self, current: Entitlement | None) -> bool:
        """Last writer wins by the producer's (as_of, version), never by arrival order."""
        if current is None:
            return True
        return (self.as_of, self.version) > (current.as_of, current.version)

    def effective(self, now: datetime, free: Limits) -> Entitlement:
        if self.valid_until is not None and now >= self.valid_until:
            return replace(self, plan=FREE_PLAN, limits=free, valid_until=None)
        return self


def free_entitlement(user_id: str, free: Limits, now: datetime) -> Entitlement:
    return Entitlement(
        user_id=user_id, plan=FREE_PLAN, limits=free, valid_until=None, version=0, as_of=now
    )
