"""Buying: checkout sessions, the billing portal, cancelling and resuming a subscription."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError
from sonata_kit import BadRequest, Conflict, NotFound

from sonata_payment.adapters import repository as repo
from sonata_payment.adapters.documents import Customer, Order
from sonata_payment.domain.plans import Plan, buyable
from sonata_payment.service_layer.ports import CheckoutLink, PaymentProvider


async def _provider_customer(provider: PaymentProvider, user_id: str, now: datetime) -> str:
    """The provider's customer for this user, created once (keyed by the user id)."""
    found = await repo.customer(user_id)
    if found is not None and found.get("provider_customer_id"):
        return str(found["provider_customer_id"])
    customer_id = await provider.create_customer(
        user_id=user_id,
        email=None if found is None else found.get("email"),
        name=None if found is None else found.get("display_name"),
        idempotency_key=f"customer-{user_id}",
    )
    customers = Customer.get_pymongo_collection()
    try:
        await customers.update_one(
            {"user_id": user_id},
            {
                "$set": {"provider_customer_id": customer_id},
                "$setOnInsert": {"email": None, "display_name": None, "created_at": now},
            },
            upsert=True,
        )
    except DuplicateKeyError:  # a concurrent request made the row first: fill it in
        await customers.update_one(
            {"user_id": user_id}, {"$set": {"provider_customer_id": customer_id}}
        )
    return customer_id


async def start_checkout(
    provider: PaymentProvider,
    prices: dict[str, str],
    user_id: str,
    item: str,
    order_key: str | None,
    now: datetime,
) -> tuple[str, CheckoutLink]:
    """A checkout session for ``item``; the same order never gets a second session.

    The order is the user's ``order_key`` (the client's Idempotency-Key), or else the item
    itself, so a retried click reuses the open order. The provider's idempotency key is
    derived from the order id.
    """
    product = buyable(item)
    if product is None or item not in prices:
        raise BadRequest(f"nothing to buy called {item!r}", code="unknown_item")
    if isinstance(product, Plan) and await repo.owns_lifetime(user_id, None):
        # lifetime already includes every plan: a second one, or a subscription, buys nothing
        raise Conflict("lifetime access is already owned", code="already_lifetime")
    if isinstance(product, Plan) and product.kind == "subscription":
        live = [s for s in await repo.subscriptions_of(user_id, None) if not s.ended]
        if live:
            raise Conflict("a subscription is already running", code="already_subscribed")
    order = await _open_order(user_id, order_key or f"item:{item}", item, now)
    if order["item"] != item:
        raise Conflict("this order key was used for another item", code="order_key_reused")
    customer_id = await _provider_customer(provider, user_id, now)
    mode: Literal["subscription", "payment"] = (
        "subscription" if isinstance(product, Plan) and product.interval else "payment"
    )
    link = await provider.create_checkout(
        customer_id=customer_id,
        price_id=prices[item],
        mode=mode,
        metadata={"user_id": user_id, "item": item, "order_id": order["order_id"]},
        idempotency_key=f"checkout-{order['order_id']}",
    )
    await Order.get_pymongo_collection().update_one(
        {"order_id": order["order_id"]},
        {"$set": {"session_id": link.session_id, "url": link.url}},
    )
    return order["order_id"], link


async def _open_order(user_id: str, key: str, item: str, now: datetime) -> dict[str, Any]:
    orders = Order.get_pymongo_collection()
    for attempt in range(20):
        try:
            found = await orders.find_one_and_update(
                {"user_id": user_id, "order_key": key},
                {
                    "$setOnInsert": {
                        "order_id": uuid.uuid4().hex,
                        "item": item,
                        "status": "open",
                        "session_id": None,
                        "url": None,
                        "created_at": now,
                    }
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            # a concurrent retry inserted it first: that order is this one (MongoDB's advice
            # for racing upserts is to try again; the winner may not be readable at once)
            found = await orders.find_one({"user_id": user_id, "order_key": key})
        if found is not None:
            return dict(found)
        await asyncio.sleep(0.005 * (attempt + 1))
    raise Conflict("the order changed meanwhile; retry", code="busy")


async def close_order(order_id: str, session: AsyncClientSession) -> None:
    """A paid order frees its key, so buying the same item again opens a new order."""
    await Order.get_pymongo_collection().update_one(
        {"order_id": order_id},
        {"$set": {"order_key": f"done:{order_id}", "status": "completed"}},
        session=session,
    )


async def expire_order(order_id: str, session_id: str, session: AsyncClientSession) -> None:
    """The order's checkout expired unpaid: its key is free for a new order and session.

    Only the open order of that very session: a completed one stays completed.
    """
    await Order.get_pymongo_collection().update_one(
        {"order_id": order_id, "session_id": session_id, "status": {"$ne": "completed"}},
        {"$set": {"order_key": f"expired:{order_id}", "status": "expired"}},
        session=session,
    )


async def portal_url(provider: PaymentProvider, user_id: str) -> str:
    found = await repo.customer(user_id)
    if found is None or not found.get("provider_customer_id"):
        raise NotFound("no billing account yet: buy something first", code="no_billing_account")
    return await provider.portal_url(customer_id=str(found["provider_customer_id"]))


async def set_cancel_at_period_end(
    provider: PaymentProvider, user_id: str, cancel: bool, request_key: str
) -> str:
    """Cancel at period end, or resume; the state itself arrives by webhook."""
    live = [s for s in await repo.subscriptions_of(user_id, None) if not s.ended]
    if not live:
        raise NotFound("no running subscription", code="no_subscription")
    sub = max(live, key=lambda s: s.current_period_end)
    await provider.set_cancel_at_period_end(
        subscription_id=sub.subscription_id,
        cancel=cancel,
        idempotency_key=f"{'cancel' if cancel else 'resume'}-{sub.subscription_id}-{request_key}",
    )
    return sub.subscription_id
