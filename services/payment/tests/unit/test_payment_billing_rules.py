"""The order-independence of the billing rules, exhaustively over small event histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from itertools import permutations

from sonata_payment.domain.billing import (
    InvoiceState,
    SubscriptionSnapshot,
    decide,
    merge_invoice,
    merge_subscription,
)
from sonata_payment.domain.plans import FREE, PLANS

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MONTH = timedelta(days=30)
GRACE = timedelta(days=3)


def snap(status: str, minutes: int, period: int = 1, cancel: bool = False) -> SubscriptionSnapshot:
    return SubscriptionSnapshot(
        subscription_id="sub_1",
        user_id="u",
        plan="premium_monthly",
        status=status,  # type: ignore[arg-type]
        current_period_end=T0 + period * MONTH,
        cancel_at_period_end=cancel,
        seen_at=T0 + timedelta(minutes=minutes),
        event_id=f"evt_{minutes:05d}",
    )


def invoice(invoice_id: str, paid: bool, failed_at: datetime | None, attempt: int) -> InvoiceState:
    status = "paid" if paid else "open"
    return InvoiceState(invoice_id, "u", "sub_1", 999, "eur", status, attempt, failed_at, T0)


def final(subs: tuple[SubscriptionSnapshot, ...]) -> SubscriptionSnapshot:
    return reduce(merge_subscription, subs[1:], merge_subscription(None, subs[0]))


def test_every_order_of_a_subscription_history_keeps_the_provider_latest_state() -> None:
    history = (
        snap("incomplete", 0),
        snap("active", 1),
        snap("active", 60, cancel=True),
        snap("active", 120),
        snap("past_due", 30 * 24 * 60, period=2),
        snap("active", 31 * 24 * 60, period=2),
    )
    outcomes = {final(order) for order in permutations(history)}
    assert outcomes == {history[-1]}


def test_an_ended_subscription_never_comes_back_whatever_arrives_after() -> None:
    history = (snap("active", 1), snap("canceled", 5), snap("active", 9, period=2))
    outcomes = {final(order).status for order in permutations(history)}
    assert outcomes == {"canceled"}


def test_a_paid_invoice_stays_paid_and_keeps_its_first_failure() -> None:
    first = T0 + MONTH
    seen = [
        invoice("in_2", False, first, 1),
        invoice("in_2", False, first + timedelta(days=1), 2),
        invoice("in_2", True, None, 3),
    ]
    outcomes = {
        reduce(merge_invoice, order[1:], merge_invoice(None, order[0]))
        for order in permutations(seen)
    }
    assert outcomes == {invoice("in_2", True, first, 3)}


def test_a_failed_renewal_keeps_premium_for_the_grace_period_then_free() -> None:
    failed_at = T0 + MONTH
    sub = snap("past_due", 30 * 24 * 60, period=2)
    unpaid = [invoice("in_2", False, failed_at, 1)]
    during = decide([sub], unpaid, False, failed_at + GRACE - timedelta(seconds=1), GRACE)
    after = decide([sub], unpaid, False, failed_at + GRACE, GRACE)
    assert (during.plan, during.valid_until) == ("premium_monthly", failed_at + GRACE)
    assert (after.plan, after.limits, after.valid_until) == (FREE, PLANS[FREE].limits, None)


def test_cancel_at_period_end_lasts_to_the_period_end_and_lifetime_beats_all() -> None:
    sub = snap("active", 60, cancel=True)
    assert decide([sub], [], False, T0, GRACE).valid_until == T0 + MONTH
    assert decide([sub], [], False, T0 + MONTH, GRACE).plan == FREE
    lifetime = decide([sub], [], True, T0 + 10 * MONTH, GRACE)
    assert (lifetime.plan, lifetime.valid_until) == ("lifetime", None)
