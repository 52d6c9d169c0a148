"""Subscription and invoice state from the provider's snapshots, and the entitlement they give.

Webhooks arrive repeated and in any order, so every merge here is commutative: the result
depends on the snapshots seen, never on the order they were seen in. Pure: the clock is passed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sonata_payment.domain.plans import FREE, PLANS, Limits

SubscriptionStatus = Literal[
    "trialing", "active", "past_due", "canceled", "incomplete", "incomplete_expired", "unpaid"
]
ENDED: frozenset[str] = frozenset({"canceled", "incomplete_expired"})
# Ties inside one second of `created` within one period: the later lifecycle stage wins.
STATUS_RANK = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "unpaid": 4,
    "incomplete_expired": 5,
    "canceled": 6,
}


@dataclass(frozen=True)
class SubscriptionSnapshot:
    subscription_id: str
    user_id: str
    plan: str
    status: SubscriptionStatus
    current_period_end: datetime
    cancel_at_period_end: bool
    seen_at: datetime  # the provider event's `created`
    event_id: str

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def _order(self) -> tuple[datetime, datetime, int, str]:
        return (self.seen_at, self.current_period_end, STATUS_RANK[self.status], self.event_id)


def merge_subscription(
    current: SubscriptionSnapshot | None, incoming: SubscriptionSnapshot
) -> SubscriptionSnapshot:
    """The snapshot to keep. An ended subscription never comes back (Stripe cannot revive one)."""
    if current is None:
        return incoming
    if current.ended != incoming.ended:
        return current if current.ended else incoming
    return max(current, incoming, key=SubscriptionSnapshot._order)


@dataclass(frozen=True)
class InvoiceState:
    invoice_id: str
    user_id: str
    subscription_id: str | None
    amount_cents: int
    currency: str
    paid: bool
    attempt_count: int
    first_failed_at: datetime | None
    created: datetime


def merge_invoice(current: InvoiceState | None, incoming: InvoiceState) -> InvoiceState:
    """Paid is final; failures keep the earliest time and the highest attempt count."""
    if current is None:
        return incoming
    failures = [t for t in (current.first_failed_at, incoming.first_failed_at) if t is not None]
    return replace(
        current,
        paid=current.paid or incoming.paid,
        attempt_count=max(current.attempt_count, incoming.attempt_count),
        first_failed_at=min(failures) if failures else None,
    )


@dataclass(frozen=True)
class Decision:
    plan: str
    limits: Limits
    valid_until: datetime | None  # None = no end


def decide(
    subscriptions: list[SubscriptionSnapshot],
    invoices: list[InvoiceState],
    lifetime: bool,
    now: datetime,
    grace: timedelta,
) -> Decision:
    """What the user may do now: lifetime, else the best live subscription, else free."""
    if lifetime:
        return Decision("lifetime", PLANS["lifetime"].limits, None)
    best: tuple[datetime, SubscriptionSnapshot] | None = None
    for sub in subscriptions:
        until = paid_until(sub, invoices, grace)
        if until is not None and until > now and (best is None or until > best[0]):
            best = (until, sub)
    if best is None:
        return Decision(FREE, PLANS[FREE].limits, None)
    until, sub = best
    return Decision(sub.plan, PLANS[sub.plan].limits, until)


def paid_until(
    sub: SubscriptionSnapshot, invoices: list[InvoiceState], grace: timedelta
) -> datetime | None:
    """Until when the subscription grants its plan, or None if it grants nothing."""
    if sub.ended or sub.status == "incomplete":
        return None
    if sub.cancel_at_period_end:
        return sub.current_period_end
    unpaid = [
        i.first_failed_at
        for i in invoices
        if i.subscription_id == sub.subscription_id and not i.paid and i.first_failed_at
    ]
    if unpaid:
        return min(unpaid) + grace
    if sub.status in ("past_due", "unpaid"):
        return sub.seen_at + grace
    # the renewal invoice is settled shortly after the period ends: keep access meanwhile
    return sub.current_period_end + grace
