"""Provider events, verified upstream: claimed once in the inbox, then applied."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo.errors import DuplicateKeyError
from sonata_contracts.payment import PaymentFailed, PaymentSucceeded, SubscriptionChanged
from sonata_kit import ServiceError, Unprocessable
from sonata_messaging import Transaction

from sonata_payment.adapters import repository as repo
from sonata_payment.adapters import stripe_objects as wire
from sonata_payment.adapters.documents import ProviderEvent
from sonata_payment.domain.billing import (
    SUBSCRIPTION_STATUSES,
    InvoiceState,
    InvoiceStatus,
    SubscriptionSnapshot,
    SubscriptionStatus,
    bills_current_period,
    merge_invoice,
    merge_subscription,
)
from sonata_payment.domain.plans import CREDIT_PACKS, PLANS
from sonata_payment.service_layer.checkout import close_order, expire_order
from sonata_payment.service_layer.credits import apply_credit_refund, grant_credits
from sonata_payment.service_layer.entitlements import refresh_entitlements
from sonata_payment.service_layer.ports import PaymentProvider, Transactions

Obj = dict[str, Any]
ERASED_PREFIX = "erased:"


@dataclass(frozen=True)
class Billing:
    grace: timedelta
    items_by_price: dict[str, str]
    # asked for the truth when two different states of a subscription carry the same second
    provider: PaymentProvider


class AlreadyHandled(Exception):  # noqa: N818 - a signal, not an error
    pass


def _stored_payload(event: Obj) -> Obj | None:
    """Only events this service applies are kept whole (for replay); others hold no data."""
    return event if event["type"] in HANDLERS else None


async def claim(tx: Transaction, event: Obj, now: datetime) -> None:
    """Stamp the inbox row handled; a row already handled means a replay (AlreadyHandled)."""
    try:
        await ProviderEvent.get_pymongo_collection().update_one(
            {"event_id": event["id"], "handled_at": None},
            {
                "$set": {"handled_at": now, "error": None, "rejected_at": None},
                "$setOnInsert": {
                    "type": event["type"],
                    "created": wire.ts(event["created"]),
                    "payload": _stored_payload(event),
                    "received_at": now,
                },
            },
            upsert=True,
            session=tx.session,
        )
    except DuplicateKeyError as exc:
        raise AlreadyHandled(event["id"]) from exc


async def record_failure(event: Obj, reason: str, now: datetime, *, rejected: bool) -> None:
    """Keep an event that could not be applied, unhandled.

    ``rejected`` (a 4xx: the event itself is wrong) marks it dead-lettered with its reason;
    otherwise (the provider's API failed) it only waits for the provider's retry.
    """
    await ProviderEvent.get_pymongo_collection().update_one(
        {"event_id": event["id"], "handled_at": None},
        {
            "$set": {"error": reason, "rejected_at": now if rejected else None},
            "$setOnInsert": {
                "type": event["type"],
                "created": wire.ts(event["created"]),
                "payload": event,
                "received_at": now,
            },
        },
        upsert=True,
    )


async def apply_event(tx: Transaction, event: Obj, billing: Billing, now: datetime) -> None:
    """Claim the event and apply it in the same transaction."""
    await claim(tx, event, now)
    handler = HANDLERS.get(str(event["type"]))
    if handler is None:
        return  # recorded; nothing of ours depends on it
    user_id = await handler(tx, event, billing, now)
    if user_id is None:
        return
    if user_id.startswith(ERASED_PREFIX):
        # about a customer who asked to be forgotten: the books are kept, the payload is not
        await ProviderEvent.get_pymongo_collection().update_one(
            {"event_id": event["id"]}, {"$set": {"payload": None}}, session=tx.session
        )
    else:
        await refresh_entitlements(tx, user_id, now, billing.grace)


async def _user(tx: Transaction, customer: str | None, metadata: dict[str, str]) -> str:
    if customer is not None:
        user_id = await repo.user_for_provider_customer(customer, tx.session)
        if user_id is not None:
            return user_id
    if metadata.get("user_id"):
        return metadata["user_id"]
    raise Unprocessable(f"no user for customer {customer!r}", code="unknown_customer")


async def _checkout_completed(
    tx: Transaction, event: Obj, billing: Billing, now: datetime
) -> str | None:
    session = wire.parse(wire.CheckoutSession, event)
    user_id = await _user(tx, session.customer, session.metadata)
    order_id = session.metadata.get("order_id")
    if order_id:
        await close_order(order_id, tx.session)
    if session.mode != "payment" or session.payment_status != "paid":
        return user_id  # a subscription's state arrives with its own events
    item = session.metadata.get("item", "")
    if item not in CREDIT_PACKS and item != "lifetime":
        raise Unprocessable(f"checkout for unknown item {item!r}", code="unknown_item")
    if session.payment_intent is None or session.amount_total is None or not session.currency:
        raise Unprocessable(
            "a paid checkout without payment_intent, amount_total or currency",
            code="malformed_event",
        )
    receipt = await repo.upsert_receipt(
        session.payment_intent,
        {
            "invoice_id": session.id,
            "user_id": user_id,
            "item": item,
            "amount_cents": session.amount_total,
            "currency": session.currency,
            "paid": True,
            "status": "paid",
            "created": wire.ts(session.created),
        },
        tx.session,
    )
    if item in CREDIT_PACKS:
        await grant_credits(tx, user_id, CREDIT_PACKS[item].credits, f"purchase:{session.id}", now)
        if receipt["refunded_cents"] > 0:
            await apply_credit_refund(tx, receipt, now)
    await tx.publish(
        PaymentSucceeded(
            user_id=user_id,
            payment_id=session.id,
            amount_cents=session.amount_total,
            currency=session.currency,
            description=PLANS[item].name if item in PLANS else CREDIT_PACKS[item].name,
        )
    )
    return user_id


async def _checkout_expired(
    tx: Transaction, event: Obj, billing: Billing, now: datetime
) -> str | None:
    """The customer never paid: the open order is released, so the next click starts afresh
    (its idempotent session would only bring back the expired page)."""
    session = wire.parse(wire.CheckoutSession, event)
    order_id = session.metadata.get("order_id")
    if order_id:
        await expire_order(order_id, session.id, tx.session)
    return None


def _status(sub: wire.Subscription) -> SubscriptionStatus:
    if sub.status not in SUBSCRIPTION_STATUSES:
        raise Unprocessable(
            f"subscription {sub.id} has a status this service does not know: {sub.status!r}",
            code="unknown_status",
        )
    status: SubscriptionStatus = sub.status  # type: ignore[assignment] # checked just above
    return status


def _snapshot(
    sub: wire.Subscription,
    user_id: str,
    billing: Billing,
    seen_at: datetime,
    event_id: str,
    fetched_at: datetime | None = None,
) -> SubscriptionSnapshot:
    plan = sub.metadata.get("item") or billing.items_by_price.get(sub.price_id)
    if plan not in PLANS or PLANS[plan].kind != "subscription":
        raise Unprocessable(f"subscription to unknown price {sub.price_id!r}", code="unknown_price")
    return SubscriptionSnapshot(
        subscription_id=sub.id,
        user_id=user_id,
        plan=plan,
        status=_status(sub),
        current_period_end=sub.period_end,
        cancel_at_period_end=sub.cancel_at_period_end,
        seen_at=seen_at,
        event_id=event_id,
        fetched_at=fetched_at,
    )


def _state(s: SubscriptionSnapshot) -> tuple[str, datetime, bool]:
    return (s.status, s.current_period_end, s.cancel_at_period_end)


async def _subscription_event(
    tx: Transaction, event: Obj, billing: Billing, now: datetime
) -> str | None:
    sub = wire.parse(wire.Subscription, event)
    user_id = await _user(tx, sub.customer, sub.metadata)
    incoming = _snapshot(sub, user_id, billing, wire.ts(event["created"]), event["id"])
    current = await repo.subscription(sub.id, tx.session)
    if (
        current is not None
        and current.seen_at == incoming.seen_at
        and _state(current) != _state(incoming)
    ):
        # Stripe's events carry no order finer than `created`, in seconds: event ids are
        # random, and the subscription object has no version or update time. Two different
        # states from one second cannot be ordered from the events, so the provider's current
        # object decides, stamped with that second and the time it was fetched: it outranks
        # every event of the second, and any event of a later second still replaces it.
        latest = wire.parse_object(
            wire.Subscription, await billing.provider.subscription(sub.id), "subscription"
        )
        incoming = _snapshot(latest, user_id, billing, incoming.seen_at, incoming.event_id, now)
    merged = merge_subscription(current, incoming)
    if merged != current:
        await repo.save_subscription(merged, tx.session)
        if current is None or _state(current) != _state(merged):
            await tx.publish(
                SubscriptionChanged(
                    user_id=user_id,
                    subscription_id=merged.subscription_id,
                    plan=merged.plan,
                    status=merged.status,
                    cancel_at_period_end=merged.cancel_at_period_end,
                    current_period_end=merged.current_period_end,
                )
            )
    return user_id


INVOICE_STATUS: dict[str, InvoiceStatus] = {
    "invoice.paid": "paid",
    "invoice.payment_failed": "open",
    "invoice.voided": "void",
    "invoice.marked_uncollectible": "uncollectible",
}


async def _invoice_event(
    tx: Transaction, event: Obj, billing: Billing, now: datetime
) -> str | None:
    inv = wire.parse(wire.Invoice, event)
    user_id = await _user(tx, inv.customer, inv.metadata)
    failed = event["type"] == "invoice.payment_failed"
    incoming = InvoiceState(
        invoice_id=inv.id,
        user_id=user_id,
        subscription_id=inv.subscription_id,
        amount_cents=inv.amount_due,
        currency=inv.currency,
        status=INVOICE_STATUS[event["type"]],
        attempt_count=inv.attempt_count,
        first_failed_at=wire.ts(event["created"]) if failed else None,
        created=wire.ts(inv.created),
        period_end=inv.service_period_end,
        payment_intent=inv.intent,
    )
    if incoming.payment_intent is not None:
        # a refund of this invoice's charge that arrived before it
        early = await repo.take_pending_refund(incoming.payment_intent, tx.session)
        incoming = replace(incoming, refunded_cents=early)
    current = await repo.invoice(inv.id, tx.session)
    merged = merge_invoice(current, incoming)
    if merged == current:
        return user_id
    await repo.save_invoice(merged, inv.hosted_invoice_url, tx.session)
    if merged.paid and (current is None or not current.paid):
        await tx.publish(
            PaymentSucceeded(
                user_id=user_id,
                payment_id=inv.id,
                amount_cents=merged.amount_cents,
                currency=merged.currency,
                description="subscription invoice",
                receipt_url=inv.hosted_invoice_url,
            )
        )
    elif failed and await _dunning_due(tx, current, merged):
        assert merged.first_failed_at is not None  # a failure sets it
        await tx.publish(
            PaymentFailed(
                user_id=user_id,
                payment_id=inv.id,
                amount_cents=merged.amount_cents,
                currency=merged.currency,
                reason="renewal payment failed",
                attempt=merged.attempt_count,
                grace_until=merged.first_failed_at + billing.grace,
            )
        )
    return user_id


async def _dunning_due(tx: Transaction, current: InvoiceState | None, merged: InvoiceState) -> bool:
    """One notice per attempt: only a higher attempt than any seen, on an invoice still owed
    for the period running now (a late failure of an older period puts no access at risk)."""
    if not merged.owed or merged.attempt_count <= (0 if current is None else current.attempt_count):
        return False
    if merged.subscription_id is None:
        return True
    sub = await repo.subscription(merged.subscription_id, tx.session)
    return sub is None or bills_current_period(merged, sub)


async def _charge_refunded(
    tx: Transaction, event: Obj, billing: Billing, now: datetime
) -> str | None:
    """Refunds are cumulative on the charge (`amount_refunded`), so the highest one wins."""
    charge = wire.parse(wire.Charge, event)
    refunded = charge.amount_refunded
    invoice = await repo.invoice_for_charge(charge.invoice, charge.payment_intent, tx.session)
    if invoice is not None:
        if invoice["kind"] == "invoice":
            await repo.refund_invoice(str(invoice["invoice_id"]), refunded, tx.session)
            return str(invoice["user_id"])
        receipt = await repo.refund_receipt(str(invoice["invoice_id"]), refunded, tx.session)
        if receipt.get("paid") and receipt.get("item") in CREDIT_PACKS:
            await apply_credit_refund(tx, receipt, now)
        return str(receipt["user_id"])
    if charge.payment_intent is None:
        raise Unprocessable(
            f"refund of charge {charge.id} names neither an invoice nor a payment intent",
            code="unknown_charge",
        )
    # the purchase's own event has not arrived yet: remember the refund for it
    user_id = await _user(tx, charge.customer, charge.metadata)
    await repo.remember_refund(
        charge.payment_intent, user_id, refunded, wire.ts(charge.created), tx.session
    )
    return user_id


Handler = Callable[[Transaction, Obj, Billing, datetime], Awaitable[str | None]]
HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.expired": _checkout_expired,
    "customer.subscription.created": _subscription_event,
    "customer.subscription.updated": _subscription_event,
    "customer.subscription.deleted": _subscription_event,
    "customer.subscription.paused": _subscription_event,
    "customer.subscription.resumed": _subscription_event,
    "invoice.paid": _invoice_event,
    "invoice.payment_failed": _invoice_event,
    "invoice.voided": _invoice_event,
    "invoice.marked_uncollectible": _invoice_event,
    "charge.refunded": _charge_refunded,
}


async def receive(
    transactions: Transactions, event: Obj, billing: Billing, now: datetime
) -> Literal["handled", "duplicate"]:
    """Apply a verified provider event once; a replay is acknowledged and changes nothing.

    An event that cannot be applied as it is (malformed, an unknown status or customer) is
    dead-lettered in the inbox with its reason and answered with a 4xx naming it, every time
    it is delivered: never a 5xx, and nothing half-applied. A provider API failure is a 502.
    """

    async def use_case(tx: Transaction) -> None:
        await apply_event(tx, event, billing, now)

    try:
        await transactions(use_case)
    except AlreadyHandled:
        return "duplicate"
    except ServiceError as exc:
        await record_failure(event, str(exc.detail), now, rejected=exc.status_code < 500)
        raise
    return "handled"
