"""What can be bought and what it allows. Pure data; price ids come from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FREE = "free"


@dataclass(frozen=True)
class Limits:
    scored_sessions_per_day: int | None  # None = unlimited
    coach: bool
    full_reports: bool
    teacher_seats: int


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    kind: Literal["free", "subscription", "one_time"]
    amount_cents: int
    currency: str
    interval: Literal["month", "year"] | None
    limits: Limits


@dataclass(frozen=True)
class CreditPack:
    key: str
    name: str
    credits: int
    amount_cents: int
    currency: str


FREE_LIMITS = Limits(scored_sessions_per_day=3, coach=False, full_reports=False, teacher_seats=0)
PREMIUM_LIMITS = Limits(
    scored_sessions_per_day=None, coach=True, full_reports=True, teacher_seats=0
)
LIFETIME_LIMITS = Limits(
    scored_sessions_per_day=None, coach=True, full_reports=True, teacher_seats=5
)

PLANS: dict[str, Plan] = {
    p.key: p
    for p in (
        Plan(FREE, "Free", "free", 0, "eur", None, FREE_LIMITS),
        Plan(
            "premium_monthly",
            "Premium (monthly)",
            "subscription",
            999,
            "eur",
            "month",
            PREMIUM_LIMITS,
        ),
        Plan(
            "premium_yearly",
            "Premium (yearly)",
            "subscription",
            9900,
            "eur",
            "year",
            PREMIUM_LIMITS,
        ),
        Plan("lifetime", "Lifetime", "one_time", 24900, "eur", None, LIFETIME_LIMITS),
    )
}

CREDIT_PACKS: dict[str, CreditPack] = {
    c.key: c
    for c in (
        CreditPack("credits_10", "10 coach credits", 10, 499, "eur"),
        CreditPack("credits_50", "50 coach credits", 50, 1999, "eur"),
    )
}


def buyable(item: str) -> Plan | CreditPack | None:
    if item in CREDIT_PACKS:
        return CREDIT_PACKS[item]
    plan = PLANS.get(item)
    return plan if plan is not None and plan.kind != "free" else None
