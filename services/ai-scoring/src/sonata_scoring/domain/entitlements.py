"""What a user may do, as last told by payment (plans and coach credits). Pure: the clock is
passed in."""

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


# A credit spend with this reference prefix unlocks the coach on one performance.
COACH_REFERENCE = "coach:"
COACH_CREDITS = 1
PAYMENT_SPEND_ROUTE = "POST /api/payment/v1/credits/spend"


def coach_unlocked_by(reason: str, delta: int, reference: str | None) -> str | None:
    """The performance id a credit-ledger entry unlocks the coach on, if any: a spend of at
    least one credit with reference `coach:<performance_id>`. A refund or purchase unlocks
    nothing, and takes nothing back."""
    if reason != "spend" or -delta < COACH_CREDITS or reference is None:
        return None
    if not reference.startswith(COACH_REFERENCE):
        return None
    performance_id = reference.removeprefix(COACH_REFERENCE)
    return performance_id or None


def coach_refusal(limits: Limits, plan: str, unlocked: bool, performance_id: str) -> str | None:
    """Why the coach may not give feedback on this performance, naming both ways to unlock it;
    None when the plan has the coach or a credit was spent on this performance."""
    if limits.coach or unlocked:
        return None
    return (
        f"the {plan} plan has no coach; a paid plan with the coach unlocks it, or spend "
        f"{COACH_CREDITS} credit on this performance: {PAYMENT_SPEND_ROUTE} "
        f'{{"credits": {COACH_CREDITS}, "reference": "{COACH_REFERENCE}{performance_id}"}}'
    )
