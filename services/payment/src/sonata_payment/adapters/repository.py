"""Reads and writes of payment's collections, always inside the caller's transaction."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from sonata_payment.adapters.documents import (
    CreditAccount,
    CreditEntry,
    Customer,
    Entitlement,
    InvoiceDoc,
    SubscriptionDoc,
)
from sonata_payment.domain.billing import InvoiceState, SubscriptionSnapshot

Session = AsyncClientSession


def _fields(doc: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The dataclass fields of a stored row; a field added later is absent from older rows."""
    return {n: doc[n] for n in names if n in doc}


async def customer(user_id: str, session: Session | None = None) -> dict[str, Any] | None:
    return await Customer.get_pymongo_collection().find_one({"user_id": user_id}, session=session)


async def user_for_provider_customer(customer_id: str, session: Session) -> str | None:
    found = await Customer.get_pymongo_collection().find_one(
        {"provider_customer_id": customer_id}, session=session
    )
    return None if found is None else str(found["user_id"])


SUB_FIELDS = tuple(SubscriptionSnapshot.__dataclass_fields__)
INVOICE_FIELDS = tuple(InvoiceState.__dataclass_fields__)


async def subscription(sub_id: str, session: Session) -> SubscriptionSnapshot | None:
    doc = await SubscriptionDoc.get_pymongo_collection().find_one(
        {"subscription_id": sub_id}, session=session
    )
    return None if doc is None else SubscriptionSnapshot(**_fields(doc, SUB_FIELDS))


async def subscriptions_of(user_id: str, session: Session | None) -> list[SubscriptionSnapshot]:
    cursor = SubscriptionDoc.get_pymongo_collection().find({"user_id": user_id}, session=session)
    return [SubscriptionSnapshot(**_fields(d, SUB_FIELDS)) async for d in cursor]


async def save_subscription(snapshot: SubscriptionSnapshot, session: Session) -> None:
    await SubscriptionDoc.get_pymongo_collection().update_one(
        {"subscription_id": snapshot.subscription_id},
        {"$set": asdict(snapshot)},
        upsert=True,
        session=session,
    )


async def invoice(invoice_id: str, session: Session) -> InvoiceState | None:
    doc = await InvoiceDoc.get_pymongo_collection().find_one(
        {"invoice_id": invoice_id, "kind": "invoice"}, session=session
    )
    return None if doc is None else InvoiceState(**_fields(doc, INVOICE_FIELDS))


async def invoices_of(user_id: str, session: Session | None) -> list[InvoiceState]:
    cursor = InvoiceDoc.get_pymongo_collection().find(
        {"user_id": user_id, "kind": "invoice"}, session=session
    )
    return [InvoiceState(**_fields(d, INVOICE_FIELDS)) async for d in cursor]


async def save_invoice(state: InvoiceState, url: str | None, session: Session) -> None:
    await InvoiceDoc.get_pymongo_collection().update_one(
        {"invoice_id": state.invoice_id},
        {"$set": {**asdict(state), "paid": state.paid, "kind": "invoice", "url": url}},
        upsert=True,
        session=session,
    )


async def upsert_receipt(
    payment_intent: str, fields: dict[str, Any], session: Session
) -> dict[str, Any]:
    """A one-time purchase keyed by its payment intent; refunds may arrive before it."""
    found = await InvoiceDoc.get_pymongo_collection().find_one_and_update(
        {"payment_intent": payment_intent, "kind": "receipt"},
        {"$set": fields, "$setOnInsert": {"refunded_cents": 0}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert found is not None  # an upsert returning the document after always finds one
    return dict(found)


PENDING_PREFIX = "pending:"


async def remember_refund(
    payment_intent: str, user_id: str, refunded_cents: int, created: datetime, session: Session
) -> None:
    """A refund seen before its purchase: a placeholder receipt the purchase completes."""
    await InvoiceDoc.get_pymongo_collection().update_one(
        {"payment_intent": payment_intent, "kind": "receipt"},
        {
            "$max": {"refunded_cents": refunded_cents},
            "$setOnInsert": {
                "invoice_id": f"{PENDING_PREFIX}{payment_intent}",
                "user_id": user_id,
                "amount_cents": 0,
                "currency": "eur",
                "paid": False,
                "status": "open",
                "created": created,
            },
        },
        upsert=True,
        session=session,
    )


async def take_pending_refund(payment_intent: str, session: Session) -> int:
    """The refund remembered for a subscription invoice's charge, moved onto the invoice."""
    found = await InvoiceDoc.get_pymongo_collection().find_one_and_delete(
        {"payment_intent": payment_intent, "invoice_id": f"{PENDING_PREFIX}{payment_intent}"},
        session=session,
    )
    return 0 if found is None else int(found["refunded_cents"])


async def invoice_for_charge(
    invoice_id: str | None, payment_intent: str | None, session: Session
) -> dict[str, Any] | None:
    """The invoice or receipt a charge paid: by the charge's invoice, else its payment intent."""
    invoices = InvoiceDoc.get_pymongo_collection()
    if invoice_id is not None:
        found = await invoices.find_one({"invoice_id": invoice_id}, session=session)
        if found is not None:
            return dict(found)
    if payment_intent is None:
        return None
    return await invoices.find_one(
        {
            "payment_intent": payment_intent,
            "invoice_id": {"$ne": f"{PENDING_PREFIX}{payment_intent}"},
        },
        session=session,
    )


async def refund_invoice(invoice_id: str, refunded_cents: int, session: Session) -> None:
    await InvoiceDoc.get_pymongo_collection().update_one(
        {"invoice_id": invoice_id}, {"$max": {"refunded_cents": refunded_cents}}, session=session
    )


async def refund_receipt(invoice_id: str, refunded_cents: int, session: Session) -> dict[str, Any]:
    found = await InvoiceDoc.get_pymongo_collection().find_one_and_update(
        {"invoice_id": invoice_id},
        {"$max": {"refunded_cents": refunded_cents}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert found is not None  # the caller has just read it in this transaction
    return dict(found)


async def owns_lifetime(user_id: str, session: Session | None) -> bool:
    cursor = InvoiceDoc.get_pymongo_collection().find(
        {"user_id": user_id, "kind": "receipt", "item": "lifetime", "paid": True},
        session=session,
    )
    return any([doc["refunded_cents"] < doc["amount_cents"] async for doc in cursor])


async def billing_history(user_id: str) -> list[dict[str, Any]]:
    cursor = (
        InvoiceDoc.get_pymongo_collection()
        .find({"user_id": user_id}, {"_id": 0})
        .sort("created", -1)
        .limit(100)
    )
    return [doc async for doc in cursor]


async def entitlement(user_id: str, session: Session | None) -> dict[str, Any] | None:
    return await Entitlement.get_pymongo_collection().find_one(
        {"user_id": user_id}, session=session
    )


async def save_entitlement(row: dict[str, Any], session: Session) -> None:
    await Entitlement.get_pymongo_collection().update_one(
        {"user_id": row["user_id"]}, {"$set": row}, upsert=True, session=session
    )


async def expired_entitlements(now: datetime, limit: int = 500) -> list[str]:
    cursor = Entitlement.get_pymongo_collection().find(
        {"valid_until": {"$lte": now}}, {"user_id": 1}
    )
    return [str(doc["user_id"]) async for doc in cursor.limit(limit)]


async def change_balance(user_id: str, delta: int, session: Session) -> int | None:
    """Apply ``delta``; a debit that would take the balance below zero is refused (None).

    The condition is part of the update itself, so concurrent debits cannot both pass it.
    """
    accounts = CreditAccount.get_pymongo_collection()
    query: dict[str, Any] = {"user_id": user_id}
    if delta < 0:
        query["balance"] = {"$gte": -delta}
    found = await accounts.find_one_and_update(
        query,
        {"$inc": {"balance": delta}},
        upsert=delta >= 0,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    return None if found is None else int(found["balance"])


async def balance(user_id: str, session: Session | None = None) -> int:
    found = await CreditAccount.get_pymongo_collection().find_one(
        {"user_id": user_id}, session=session
    )
    return 0 if found is None else int(found["balance"])


async def ledger_entry(user_id: str, reference: str, session: Session) -> dict[str, Any] | None:
    return await CreditEntry.get_pymongo_collection().find_one(
        {"user_id": user_id, "reference": reference}, session=session
    )


async def ledger_entries(user_id: str, prefix: str, session: Session) -> list[dict[str, Any]]:
    """The user's entries whose reference starts with ``prefix``."""
    cursor = CreditEntry.get_pymongo_collection().find(
        {"user_id": user_id, "reference": {"$regex": f"^{re.escape(prefix)}"}}, session=session
    )
    return [doc async for doc in cursor]


async def add_ledger_entry(entry: dict[str, Any], session: Session) -> None:
    await CreditEntry.get_pymongo_collection().insert_one(entry, session=session)


async def ledger(user_id: str, limit: int = 100) -> list[dict[str, Any]]:
    cursor = (
        CreditEntry.get_pymongo_collection()
        .find({"user_id": user_id}, {"_id": 0})
        .sort("created_at", -1)
        .limit(limit)
    )
    return [doc async for doc in cursor]
