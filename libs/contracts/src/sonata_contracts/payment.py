"""Events published by the payment service."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from sonata_contracts.base import Event


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    scored_sessions_per_day: int | None  # None = unlimited
    coach: bool
    full_reports: bool
    teacher_seats: int


class EntitlementsChanged(Event):
    """A user's current plan limits. Consumers keep the one with the highest (as_of, version)."""

    NAME: ClassVar[str] = "payment.entitlements_changed.v1"

    user_id: str
    plan: str
    limits: Limits
    valid_until: AwareDatetime | None  # None = no end (free plan, lifetime)
    version: int
    as_of: AwareDatetime


class PaymentSucceeded(Event):
    NAME: ClassVar[str] = "payment.payment_succeeded.v1"

    user_id: str
    payment_id: str
    amount_cents: int
    currency: str
    description: str
    receipt_url: str | None = None


class PaymentFailed(Event):
    NAME: ClassVar[str] = "payment.payment_failed.v1"

    user_id: str
    payment_id: str
    amount_cents: int
    currency: str
    reason: str
    attempt: int
    grace_until: AwareDatetime | None = None


class CreditsChanged(Event):
    """One credit-ledger entry. `reference` is what the credits went to: for a spend, the
    reference the client gave (`coach:<performance_id>` unlocks the coach on that
    performance); None for other entries."""

    NAME: ClassVar[str] = "payment.credits_changed.v1"

    user_id: str
    delta: int
    balance: int
    reason: Literal["purchase", "spend", "refund", "grant", "expiry"]
    entry_id: str
    reference: str | None = None


class SubscriptionChanged(Event):
    NAME: ClassVar[str] = "payment.subscription_changed.v1"

    user_id: str
    subscription_id: str
    plan: str
    status: Literal[
        "trialing",
        "active",
        "past_due",
        "canceled",
        "incomplete",
        "unpaid",
        "incomplete_expired",
        "paused",
    ]
    cancel_at_period_end: bool
    current_period_end: AwareDatetime | None
