"""Subscription and invoice state from the provider's snapshots, and the entitlement they give.

Webhooks arrive repeated and in any order, so every merge here is commutative: the result
depends on the snapshots seen, never on the order they were seen in. Pure: the clock is passed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal, get_args

from sonata_payment.domain.plans import FREE, PLANS, Limits

SubscriptionStatus = Literal[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
]
SUBSCRIPTION_STATUSES: frozenset[str] = frozenset(get_args(SubscriptionStatus))


class Access(Enum):
    """What a subscription status grants."""

    PAID = "paid"  # the plan, to the period end (and the renewal's grace)
    GRACE = "grace"  # the plan while the failed payment is retried, then nothing
    NONE = "none"  # nothing now, but the subscription may still come back (pay, resume)
    ENDED = "ended"  # nothing, ever again: Stripe never revives these


# Every status Stripe documents, stated explicitly; an unknown one is refused upstream.
ACCESS: dict[str, Access] = {
    "trialing": Access.PAID,
    "active": Access.PAID,
    "past_due": Access.GRACE,
    # the first payment has not succeeded yet
    "incomplete": Access.NONE,
    # every retry failed: Stripe leaves the invoices open but the customer has stopped paying
    "unpaid": Access.NONE,
    # a trial ended without a payment method: no billing, no access, until resumed
    "paused": Access.NONE,
    "incomplete_expired": Access.ENDED,
    "canceled": Access.ENDED,
}
assert set(ACCESS) == SUBSCRIPTION_STATUSES


@dataclass(frozen=True)
class SubscriptionSnapshot:
    subscription_id: str
    user_id: str
    plan: str
    status: SubscriptionStatus
    current_period_end: datetime
    cancel_at_period_end: bool
    seen_at: datetime  # the provider event's `created` (seconds)
    event_id: str
    # set when the state is the provider's current object, fetched because two different
    # states carried the same second: that fetch is newer than every event of the second
    fetched_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return ACCESS[self.status] is Access.ENDED

    def _order(self) -> tuple[datetime, bool, datetime, datetime, str]:
        # Stripe's only ordering is `created`, to the second (event ids are random). Within a
        # second the provider's fetched object beats the events, the later fetch beats an
        # earlier one. What remains (the same state seen twice) only needs to be deterministic.
        fetched = self.fetched_at is not None
        return (
            self.seen_at,
            fetched,
            self.fetched_at or self.seen_at,
            self.current_period_end,
            self.event_id,
        )


def merge_subscription(
    current: SubscriptionSnapshot | None, incoming: SubscriptionSnapshot
) -> SubscriptionSnapshot:
    """The snapshot to keep. An ended subscription never comes back (Stripe cannot revive one)."""
    if current is None:
        return incoming
    if current.ended != incoming.ended:
        return current if current.ended else incoming
    return max(current, incoming, key=SubscriptionSnapshot._order)


InvoiceStatus = Literal["open", "uncollectible", "void", "paid"]
# Stripe's invoice lifecycle only moves forward: open -> uncollectible -> paid or void.
# Paid and void are both final and exclusive (a void invoice cannot be paid).
INVOICE_RANK: dict[str, int] = {"open": 0, "uncollectible": 1, "void": 2, "paid": 3}


@dataclass(frozen=True)
class InvoiceState:
    invoice_id: str
    user_id: str
    subscription_id: str | None
    amount_cents: int
    currency: str
    status: InvoiceStatus
    attempt_count: int
    first_failed_at: datetime | None
    created: datetime
    # the end of the service period it bills (its line's period); None when not stated
    period_end: datetime | None = None
    payment_intent: str | None = None
    refunded_cents: int = 0

    @property
    def paid(self) -> bool:
        return self.status == "paid"

    @property
    def owed(self) -> bool:
        """Still expected to be paid: a failure on it holds the grace clock."""
        return self.status in ("open", "uncollectible")


def merge_invoice(current: InvoiceState | None, incoming: InvoiceState) -> InvoiceState:
    """The furthest lifecycle stage; failures keep the earliest time and the highest attempt."""
    if current is None:
        return incoming
    failures = [t for t in (current.first_failed_at, incoming.first_failed_at) if t is not None]
    periods = [p for p in (current.period_end, incoming.period_end) if p is not None]
    return replace(
        current,
        status=max(current.status, incoming.status, key=INVOICE_RANK.__getitem__),
        attempt_count=max(current.attempt_count, incoming.attempt_count),
        first_failed_at=min(failures) if failures else None,
        period_end=max(periods) if periods else None,
        payment_intent=current.payment_intent or incoming.payment_intent,
        refunded_cents=max(current.refunded_cents, incoming.refunded_cents),
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


def bills_current_period(invoice: InvoiceState, sub: SubscriptionSnapshot) -> bool:
    """The invoice is for the subscription's current period (or one the snapshot has not seen).

    An invoice of an earlier period says nothing about the period running now: its late
    failure, voiding or refund must not take away a period that was renewed and paid.
    """
    if invoice.subscription_id != sub.subscription_id:
        return False
    return invoice.period_end is None or invoice.period_end >= sub.current_period_end


def paid_until(
    sub: SubscriptionSnapshot, invoices: list[InvoiceState], grace: timedelta
) -> datetime | None:
    """Until when the subscription grants its plan, or None if it grants nothing."""
    access = ACCESS[sub.status]
    if access in (Access.ENDED, Access.NONE):
        return None
    current = [i for i in invoices if bills_current_period(i, sub)]
    if any(i.paid and i.amount_cents > 0 and i.refunded_cents >= i.amount_cents for i in current):
        return None  # the period's money went back: so does the period
    if sub.cancel_at_period_end:
        return sub.current_period_end
    unpaid = [i.first_failed_at for i in current if i.owed and i.first_failed_at is not None]
    if unpaid:
        return min(unpaid) + grace
    if access is Access.GRACE:
        return sub.seen_at + grace
    # the renewal invoice is settled shortly after the period ends: keep access meanwhile
    return sub.current_period_end + grace
