"""Use cases driven by auth's events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_messaging import Transaction

from sonata_payment.adapters import repository as repo
from sonata_payment.adapters.documents import (
    CreditAccount,
    CreditEntry,
    Customer,
    Entitlement,
    InvoiceDoc,
    Order,
    SubscriptionDoc,
)
from sonata_payment.service_layer.ports import PaymentProvider
from sonata_payment.service_layer.webhooks import ERASED_PREFIX


async def open_customer(event: UserRegistered, tx: Transaction) -> None:
    await Customer.get_pymongo_collection().update_one(
        {"user_id": event.user_id},
        {
            "$set": {"email": event.email, "display_name": event.display_name},
            "$setOnInsert": {"provider_customer_id": None, "created_at": datetime.now(UTC)},
        },
        upsert=True,
        session=tx.session,
    )


async def forget_user(event: UserDeleted, tx: Transaction, provider: PaymentProvider) -> None:
    """Cancel what still bills, erase who the customer was, keep the books anonymised.

    Invoices, receipts and ledger lines stay (accounting law) under a random pseudonym that
    nothing links back to the user; the provider's customer id is kept for the same reason.
    """
    for sub in await repo.subscriptions_of(event.user_id, tx.session):
        if not sub.ended:
            await provider.cancel_now(
                subscription_id=sub.subscription_id,
                idempotency_key=f"{event.id}-{sub.subscription_id}",
            )
    pseudonym = f"{ERASED_PREFIX}{uuid.uuid4().hex}"
    moved = {"user_id": event.user_id}
    for document in (SubscriptionDoc, InvoiceDoc, CreditAccount, CreditEntry):
        await document.get_pymongo_collection().update_many(
            moved, {"$set": {"user_id": pseudonym}}, session=tx.session
        )
    await Customer.get_pymongo_collection().update_many(
        moved,
        {
            "$set": {
                "user_id": pseudonym,
                "email": None,
                "display_name": None,
                "erased_at": datetime.now(UTC),
            }
        },
        session=tx.session,
    )
    for document in (Order, Entitlement):
        await document.get_pymongo_collection().delete_many(moved, session=tx.session)
