"""Provider events, verified upstream: claimed once in the inbox, then applied."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from pymongo.errors import DuplicateKeyError
from sonata_contracts.payment import PaymentFailed, PaymentSucceeded, SubscriptionChanged
from sonata_kit import ServiceError, Unprocessable
from sonata_messaging import Transaction

from sonata_payment.adapters import repository as repo
from sonata_payment.adapters.documents import ProviderEvent
from sonata_payment.domain.billing import (
    InvoiceState,
    SubscriptionSnapshot,
    SubscriptionStatus,
    merge_invoice,
    merge_subscription,
)
from sonata_payment.domain.plans import CREDIT_PACKS, PLANS
from sonata_payment.service_layer.checkout import close_order
from sonata_payment.service_layer.credits import apply_credit_refund, grant_credits
from sonata_payment.service_layer.entitlements import refresh_entitlements
from sonata_payment.service_layer.ports import PaymentProvider, Transactions

Obj = dict[str, Any]
ERASED_PREFIX = "erased:"


@dataclass(frozen=True)
class Billing:
    grace: timedelta
    items_by_price: dict[str, str]
    # asked for the truth when two different states carry the same second
    provider: PaymentProvider | None = None


class AlreadyHandled(Exception):  # noqa: N818 - a signal, not an error
    pass


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


async def claim(tx: Transaction, event: Obj, now: datetime) -> None:
    """Stamp the inbox row handled; a row already handled means a replay (AlreadyHandled)."""
    try:
        await ProviderEvent.get_pymongo_collection().update_one(
            {"event_id": event["id"], "handled_at": None},
            {
                "$set": {"handled_at": now, "error": None},
                "$setOnInsert": {
                    "type": event["type"],
                    "created": _ts(event["created"]),
                    "payload": event,
                    "received_at": now,
                },
            },
            upsert=True,
            session=tx.session,
        )
    except DuplicateKeyError as exc:
        raise AlreadyHandled(event["id"]) from exc


async def record_failure(event: Obj, reason: str, now: datetime) -> None:
    """Keep an event that could not be applied, unhandled, for the provider's retry."""
    await ProviderEvent.get_pymongo_collection().update_one(
        {"event_id": event["id"], "handled_at": None},
        {
            "$set": {"error": reason},
            "$setOnInsert": {
                "type": event["type"],
                "created": _ts(event["created"]),
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
    user_id = await handler(tx, event, billing)
    if user_id is not None and not user_id.startswith(ERASED_PREFIX):
        await refresh_entitlements(tx, user_id, now, billing.grace)


async def _user(tx: Transaction, obj: Obj) -> str:
    customer = obj.get("customer")
    if isinstance(customer, str):
        user_id = await repo.user_for_provider_customer(customer, tx.session)
        if user_id is not None:
            return user_id
    metadata = obj.get("metadata") or {}
    if metadata.get("user_id"):
        return str(metadata["user_id"])
    raise Unprocessable(f"no user for customer {customer!r}", code="unknown_customer")


async def _checkout_completed(tx: Transaction, event: Obj, billing: Billing) -> str | None:
    session = cast(Obj, event["data"]["object"])
    user_id = await _user(tx, session)
    order_id = (session.get("metadata") or {}).get("order_id")
    if order_id:
        await close_order(str(order_id), tx.session)
    if session.get("mode") != "payment" or session.get("payment_status") != "paid":
        return user_id  # a subscription's state arrives with its own events
    item = str((session.get("metadata") or {}).get("item", ""))
    if item not in CREDIT_PACKS and item != "lifetime":
        raise Unprocessable(f"checkout for unknown item {item!r}", code="unknown_item")
    intent = str(session["payment_intent"])
    receipt = await repo.upsert_receipt(
        intent,
        {
            "invoice_id": session["id"],
            "user_id": user_id,
            "item": item,
            "amount_cents": int(session["amount_total"]),
            "currency": session["currency"],
            "paid": True,
            "created": _ts(session["created"]),
        },
        tx.session,
    )
    if item in CREDIT_PACKS:
        await grant_credits(tx, user_id, CREDIT_PACKS[item].credits, f"purchase:{session['id']}")
        if receipt["refunded_cents"] > 0:
            await apply_credit_refund(tx, user_id, item, intent)
    await tx.publish(
        PaymentSucceeded(
            user_id=user_id,
            payment_id=session["id"],
            amount_cents=int(session["amount_total"]),
            currency=session["currency"],
            description=PLANS[item].name if item in PLANS else CREDIT_PACKS[item].name,
        )
    )
    return user_id


def _period_end(sub: Obj) -> datetime:
    items = (sub.get("items") or {}).get("data") or []
    value = sub.get("current_period_end") or (items[0].get("current_period_end") if items else 0)
    return _ts(value or 0)


def _snapshot(
    sub: Obj, user_id: str, billing: Billing, seen_at: datetime, event_id: str
) -> SubscriptionSnapshot:
    items = (sub.get("items") or {}).get("data") or []
    price = items[0]["price"]["id"] if items else ""
    plan = (sub.get("metadata") or {}).get("item") or billing.items_by_price.get(price)
    if plan not in PLANS or PLANS[plan].kind != "subscription":
        raise Unprocessable(f"subscription to unknown price {price!r}", code="unknown_price")
    return SubscriptionSnapshot(
        subscription_id=sub["id"],
        user_id=user_id,
        plan=plan,
        status=cast(SubscriptionStatus, sub["status"]),
        current_period_end=_period_end(sub),
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        seen_at=seen_at,
        event_id=event_id,
    )


def _state(s: SubscriptionSnapshot) -> tuple[str, datetime, bool]:
    return (s.status, s.current_period_end, s.cancel_at_period_end)


async def _subscription_event(tx: Transaction, event: Obj, billing: Billing) -> str | None:
    sub = cast(Obj, event["data"]["object"])
    user_id = await _user(tx, sub)
    incoming: SubscriptionSnapshot = _snapshot(
        sub, user_id, billing, _ts(event["created"]), event["id"]
    )
    current = await repo.subscription(sub["id"], tx.session)
    if (
        billing.provider is not None
        and current is not None
        and current.seen_at == incoming.seen_at
        and _state(current) != _state(incoming)
    ):
        # Stripe stamps events to the second: two states from one second cannot be ordered,
        # so the provider's current object decides, and outranks both (the id sorts last).
        latest = await billing.provider.subscription(sub["id"])
        tie = f"{max(current.event_id, incoming.event_id)}~"
        incoming = _snapshot(latest, user_id, billing, incoming.seen_at, tie)
    merged = merge_subscription(current, incoming)
    if merged != current:
        await repo.save_subscription(merged, tx.session)
        await tx.publish(
            SubscriptionChanged(
                user_id=user_id,
                subscription_id=merged.subscription_id,
                plan=merged.plan,
                status=cast(Any, merged.status if merged.status in STATUSES else "canceled"),
                cancel_at_period_end=merged.cancel_at_period_end,
                current_period_end=merged.current_period_end,
            )
        )
    return user_id


STATUSES = frozenset({"trialing", "active", "past_due", "canceled", "incomplete", "unpaid"})


def _invoice_subscription(inv: Obj) -> str | None:
    if inv.get("subscription"):
        return str(inv["subscription"])
    details = (inv.get("parent") or {}).get("subscription_details") or {}
    return str(details["subscription"]) if details.get("subscription") else None


async def _invoice_event(tx: Transaction, event: Obj, billing: Billing) -> str | None:
    inv = cast(Obj, event["data"]["object"])
    user_id = await _user(tx, inv)
    paid = event["type"] == "invoice.paid"
    incoming = InvoiceState(
        invoice_id=inv["id"],
        user_id=user_id,
        subscription_id=_invoice_subscription(inv),
        amount_cents=int(inv.get("amount_due") or 0),
        currency=str(inv.get("currency") or "eur"),
        paid=paid,
        attempt_count=int(inv.get("attempt_count") or 0),
        first_failed_at=None if paid else _ts(event["created"]),
        created=_ts(inv["created"]),
    )
    current = await repo.invoice(inv["id"], tx.session)
    merged = merge_invoice(current, incoming)
    if merged == current:
        return user_id
    await repo.save_invoice(merged, inv.get("hosted_invoice_url"), tx.session)
    if paid and (current is None or not current.paid):
        await tx.publish(
            PaymentSucceeded(
                user_id=user_id,
                payment_id=inv["id"],
                amount_cents=merged.amount_cents,
                currency=merged.currency,
                description="subscription invoice",
                receipt_url=inv.get("hosted_invoice_url"),
            )
        )
    elif not merged.paid and merged.first_failed_at is not None:
        # the dunning notice: one per new attempt, with the date access ends
        await tx.publish(
            PaymentFailed(
                user_id=user_id,
                payment_id=inv["id"],
                amount_cents=merged.amount_cents,
                currency=merged.currency,
                reason="renewal payment failed",
                attempt=merged.attempt_count,
                grace_until=merged.first_failed_at + billing.grace,
            )
        )
    return user_id


async def _charge_refunded(tx: Transaction, event: Obj, billing: Billing) -> str | None:
    charge = cast(Obj, event["data"]["object"])
    intent = str(charge.get("payment_intent") or "")
    refunded = int(charge.get("amount_refunded") or 0)
    await repo.refund_charge(intent, refunded, tx.session)
    receipt = await repo.receipt_for(intent, tx.session)
    if receipt is None:
        # the purchase's own event has not arrived yet: remember the refund for it
        user_id = await _user(tx, charge)
        await repo.remember_refund(intent, user_id, refunded, _ts(charge["created"]), tx.session)
        return user_id
    if receipt.get("paid") and receipt.get("item") in CREDIT_PACKS:
        await apply_credit_refund(tx, str(receipt["user_id"]), str(receipt["item"]), intent)
    return str(receipt["user_id"])


Handler = Callable[[Transaction, Obj, Billing], Awaitable[str | None]]
HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _checkout_completed,
    "customer.subscription.created": _subscription_event,
    "customer.subscription.updated": _subscription_event,
    "customer.subscription.deleted": _subscription_event,
    "invoice.paid": _invoice_event,
    "invoice.payment_failed": _invoice_event,
    "charge.refunded": _charge_refunded,
}


async def receive(
    transactions: Transactions, event: Obj, billing: Billing, now: datetime
) -> Literal["handled", "duplicate"]:
    """Apply a verified provider event once; a replay is acknowledged and changes nothing."""

    async def use_case(tx: Transaction) -> None:
        await apply_event(tx, event, billing, now)

    try:
        await transactions(use_case)
    except AlreadyHandled:
        return "duplicate"
    except ServiceError as exc:
        await record_failure(event, str(exc.detail), now)
        raise
    except (KeyError, TypeError, ValueError) as exc:
        # signed, so from the provider, yet not the shape its API version promises
        reason = f"malformed {event['type']} object: {exc!r}"
        await record_failure(event, reason, now)
        raise Unprocessable(reason, code="malformed_event") from exc
    return "handled"
