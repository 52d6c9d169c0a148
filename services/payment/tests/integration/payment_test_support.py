"""What payment's integration tests share: the provider double's price list, a wired database."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
from sonata_messaging import Outbox
from sonata_payment.adapters.documents import DOCUMENTS, Customer
from sonata_payment.adapters.stripe_provider import StripeProvider
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


def provider(stripe_api: StripeDouble) -> StripeProvider:
    """The service's own Stripe adapter (the official client) pointed at the double."""
    return StripeProvider(
        API_KEY,
        api_base=stripe_api.url,
        success_url="https://x/ok",
        cancel_url="https://x/no",
        portal_return_url="https://x/back",
    )


def api(stripe_api: StripeDouble, method: str, path: str, form: str = "") -> dict[str, Any]:
    """A call on the double as the service would make it (for tests that skip HTTP)."""
    status, body = stripe_api.handle(method, path, {"authorization": f"Bearer {API_KEY}"}, form)
    assert status == 200, body
    return body


DOUBLE_ID = re.compile(r'"((?:cus|sub|si|in|il|inpay|ch|pi|cs_test|evt)_[0-9a-f]{20})"')


def with_suffix(events: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    """The same events about fresh objects: every id the double made gets ``_<suffix>``."""
    renamed: list[dict[str, Any]] = json.loads(
        DOUBLE_ID.sub(lambda m: f'"{m.group(1)}_{suffix}"', json.dumps(events))
    )
    return renamed


def clone_subscriptions(stripe_api: StripeDouble, ids: list[str], suffix: str) -> None:
    """The double's current subscriptions under the renamed ids, for the service to fetch."""
    for sub_id in ids:
        (copy,) = with_suffix([stripe_api.objects[sub_id]], suffix)
        stripe_api.objects[copy["id"]] = copy


def checkout_form(customer: str, user: str, item: str) -> str:
    mode = "payment" if item.startswith("credits") or item == "lifetime" else "subscription"
    return (
        f"mode={mode}&customer={customer}&line_items[0][price]=price_{item}"
        f"&line_items[0][quantity]=1&success_url=https://x/ok&cancel_url=https://x/no"
        f"&metadata[user_id]={user}&metadata[item]={item}"
        f"&subscription_data[metadata][user_id]={user}&subscription_data[metadata][item]={item}"
    )


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
