"""What a user's plan allows in db, as last told by payment. Pure: the clock is passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

FREE_PLAN = "free"


@dataclass(frozen=True)
class PlanLimits:
    full_reports: bool
    teacher_seats: int


@dataclass(frozen=True)
class Entitlement:
    user_id: str
    plan: str
    limits: PlanLimits
    valid_until: datetime | None
    version: int
    as_of: datetime

    def supersedes(self, current: Entitlement | None) -> bool:
        """Last writer wins by the producer's (as_of, version), never by arrival order."""
        if current is None:
            return True
        return (self.as_of, self.version) > (current.as_of, current.version)


def effective_limits(current: Entitlement | None, now: datetime, free: PlanLimits) -> PlanLimits:
    """A user payment never told us about, or whose paid plan has lapsed, has the free limits."""
    if current is None:
        return free
    if current.valid_until is not None and now >= current.valid_until:
        return free
    return current.limits


def seats_left(limits: PlanLimits, students: int) -> int:
    return max(limits.teacher_seats - students, 0)
