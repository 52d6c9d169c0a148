"""What payment's integration tests share: the provider double's price list, a wired database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
from sonata_messaging import Outbox
from sonata_payment.adapters.documents import DOCUMENTS, Customer
from sonata_payment.bootstrap import RuntimeTransactions
from sonata_payment.domain.plans import CREDIT_PACKS, PLANS
from sonata_payment.settings import PaymentSettings
from sonata_testing.stripe_double import Price, StripeDouble

API_KEY = "sk_test_payment_integration"
WEBHOOK_SECRET = "whsec_payment_integration"


def prices() -> list[Price]:
    """The double's prices: the service's default price ids and its catalogue's amounts."""
    ids = PaymentSettings().stripe_prices
    found = [
        Price(ids[key], plan.amount_cents, plan.currency, plan.interval)
        for key, plan in PLANS.items()
        if key in ids
    ]
    found += [
        Price(ids[key], pack.amount_cents, pack.currency) for key, pack in CREDIT_PACKS.items()
    ]
    return found


def double() -> StripeDouble:
    return StripeDouble(API_KEY, WEBHOOK_SECRET, prices())


def api(stripe_api: StripeDouble, method: str, path: str, form: str = "") -> dict[str, Any]:
    """A call on the double as the service would make it (for tests that skip HTTP)."""
    status, body = stripe_api.handle(method, path, {"authorization": f"Bearer {API_KEY}"}, form)
    assert status == 200, body
    return body


def with_suffix(events: list[dict[str, Any]], ids: list[str], suffix: str) -> list[dict[str, Any]]:
    """The same events about fresh objects: every id in ``ids`` (and each event id) renamed."""
    text = json.dumps(events)
    for old in ids + [e["id"] for e in events]:
        text = text.replace(f'"{old}"', f'"{old}_{suffix}"')
    renamed: list[dict[str, Any]] = json.loads(text)
    return renamed


class BillingDb:
    """payment's collections on a real server, as the service process wires them."""

    def __init__(self, mongo_url: str, name: str) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
        self.database = self.client[name]
        self.outbox = Outbox(self.database, "payment")
        self.transactions = RuntimeTransactions(self.client, self.outbox)

    async def start(self) -> BillingDb:
        await init_beanie(database=self.database, document_models=list(DOCUMENTS))
        await self.outbox.ensure_indexes()
        return self

    async def add_customer(self, user_id: str, provider_customer_id: str) -> None:
        await Customer.get_pymongo_collection().insert_one(
            {
                "user_id": user_id,
                "email": f"{user_id}@example.org",
                "display_name": user_id,
                "provider_customer_id": provider_customer_id,
                "created_at": datetime.now(UTC),
            }
        )

    async def outbox_names(self, user_id: str) -> list[str]:
        cursor = self.database.outbox.find({}).sort("created_at", 1)
        return [
            doc["name"] async for doc in cursor if json.loads(doc["body"])["user_id"] == user_id
        ]
