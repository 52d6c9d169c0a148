"""Use cases driven by auth's events."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_messaging import Transaction
from sonata_messaging.outbox import OUTBOX_COLLECTION

from sonata_payment.adapters import repository as repo
from sonata_payment.adapters.documents import (
    CreditAccount,
    CreditEntry,
    Customer,
    Entitlement,
    InvoiceDoc,
    Order,
    ProviderEvent,
    SubscriptionDoc,
)
from sonata_payment.service_layer.ports import PaymentProvider
from sonata_payment.service_layer.webhooks import ERASED_PREFIX


async def open_customer(event: UserRegistered, tx: Transaction, now: datetime) -> None:
    await Customer.get_pymongo_collection().update_one(
        {"user_id": event.user_id},
        {
            "$set": {"email": event.email, "display_name": event.display_name},
            "$setOnInsert": {"provider_customer_id": None, "created_at": now},
        },
        upsert=True,
        session=tx.session,
    )


async def forget_user(
    event: UserDeleted, tx: Transaction, provider: PaymentProvider, now: datetime
) -> None:
    """Cancel what still bills, erase who the customer was, keep the books anonymised.

    Invoices, receipts and ledger lines stay (accounting law) under a random pseudonym that
    nothing links back to the user; the provider's customer id is kept for the same reason,
    while the customer itself (email, name) is deleted at the provider. Stored webhook
    payloads and the outbox's events about the user are emptied.
    """
    user_id = event.user_id
    for sub in await repo.subscriptions_of(user_id, tx.session):
        if not sub.ended:
            await provider.cancel_now(
                subscription_id=sub.subscription_id,
                idempotency_key=f"{event.id}-{sub.subscription_id}",
            )
    customer = await repo.customer(user_id, tx.session)
    known = None if customer is None else customer.get("provider_customer_id")
    customer_ids: list[str] = [known] if isinstance(known, str) else []
    for customer_id in customer_ids:
        await provider.delete_customer(customer_id=customer_id)
    about_user: list[dict[str, object]] = [
        {"payload.data.object.metadata.user_id": user_id},
        {"payload.data.object.client_reference_id": user_id},
        {"payload.data.object.customer": {"$in": customer_ids}},
        {"payload.data.object.id": {"$in": customer_ids}},
    ]
    await ProviderEvent.get_pymongo_collection().update_many(
        {"$or": about_user}, {"$set": {"payload": None}}, session=tx.session
    )
    # published or not: the other services learn of the deletion from auth's event itself
    outbox = Customer.get_pymongo_collection().database[OUTBOX_COLLECTION]
    await outbox.delete_many(
        {"body": {"$regex": f'"user_id":"{re.escape(user_id)}"'}}, session=tx.session
    )
    pseudonym = f"{ERASED_PREFIX}{uuid.uuid4().hex}"
    moved = {"user_id": user_id}
    for document in (SubscriptionDoc, InvoiceDoc, CreditAccount, CreditEntry):
        await document.get_pymongo_collection().update_many(
            moved, {"$set": {"user_id": pseudonym}}, session=tx.session
        )
    await Customer.get_pymongo_collection().update_many(
        moved,
        {"$set": {"user_id": pseudonym, "email": None, "display_name": None, "erased_at": now}},
        session=tx.session,
    )
    for document in (Order, Entitlement):
        await document.get_pymongo_collection().delete_many(moved, session=tx.session)
