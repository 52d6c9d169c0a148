"""Webhook handling and the credit ledger against a real MongoDB server (no HTTP).

Replays, arrival order and concurrent spends are properties of the service layer and its
transactions, so they are exercised here in volume; the HTTP tests cover the edge.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sonata_kit import Conflict
from sonata_payment.adapters import repository as repo
from sonata_payment.domain.plans import PLANS
from sonata_payment.service_layer.credits import InsufficientCredits, grant_credits, spend_credits
from sonata_payment.service_layer.entitlements import current_decision
from sonata_payment.service_layer.webhooks import Billing, receive
from sonata_testing.stripe_double import StripeDouble

sys.path.insert(0, str(Path(__file__).parent))

from payment_test_support import BillingDb, api, double, with_suffix

pytestmark = pytest.mark.integration

GRACE = timedelta(days=3)
BILLING = Billing(
    grace=GRACE,
    items_by_price={"price_premium_monthly": "premium_monthly", "price_credits_10": "credits_10"},
)


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[StripeDouble]:
    with double() as server:
        yield server


@pytest.fixture(scope="module")
async def db(mongo_url: str) -> AsyncIterator[BillingDb]:
    billing = await BillingDb(mongo_url, f"payment_rules_{uuid.uuid4().hex[:8]}").start()
    yield billing
    await billing.client.close()


async def checkout(stripe_api: StripeDouble, db: BillingDb, item: str) -> tuple[str, str, str]:
    """A user with a provider customer and an open checkout for ``item``."""
    user = f"user-{uuid.uuid4().hex[:8]}"
    customer = api(stripe_api, "POST", "/v1/customers", f"email={user}%40example.org")["id"]
    await db.add_customer(user, customer)
    mode = "payment" if item.startswith("credits") else "subscription"
    session = api(
        stripe_api,
        "POST",
        "/v1/checkout/sessions",
        f"mode={mode}&customer={customer}&line_items[0][price]=price_{item}"
        f"&line_items[0][quantity]=1&success_url=https://x/ok&cancel_url=https://x/no"
        f"&metadata[user_id]={user}&metadata[item]={item}"
        f"&subscription_data[metadata][user_id]={user}&subscription_data[metadata][item]={item}",
    )
    return user, customer, session["id"]


async def test_a_thousand_replays_of_one_webhook_have_one_effect(
    stripe_api: StripeDouble, db: BillingDb
) -> None:
    user, _, session = await checkout(stripe_api, db, "credits_10")
    (completed,) = stripe_api.complete_checkout(session)
    now = datetime.now(UTC)

    outcomes: list[str] = []
    for _ in range(20):  # 1,000 deliveries, 50 at a time
        outcomes += await asyncio.gather(
            *(receive(db.transactions, completed, BILLING, now) for _ in range(50))
        )

    assert Counter(outcomes) == {"handled": 1, "duplicate": 999}
    assert await repo.balance(user) == 10
    assert [e["delta"] for e in await repo.ledger(user)] == [10]
    # one of each, never repeated: the credits, the receipt, the first entitlement statement
    assert sorted(await db.outbox_names(user)) == [
        "payment.credits_changed.v1",
        "payment.entitlements_changed.v1",
        "payment.payment_succeeded.v1",
    ]


def lifecycle(stripe_api: StripeDouble, session: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Subscribe, cancel at period end, resume, miss a renewal, recover: every event, in order."""
    events = stripe_api.complete_checkout(session)
    sub = next(e for e in events if e["type"] == "customer.subscription.created")["data"]
    sub_id = sub["object"]["id"]
    for step in ("cancel_at_period_end=true", "cancel_at_period_end=false"):
        stripe_api.advance(3600)
        api(stripe_api, "POST", f"/v1/subscriptions/{sub_id}", step)
        events.append(stripe_api.events[-1])
    stripe_api.advance(30 * 86_400)
    events += stripe_api.fail_renewal(sub_id)
    stripe_api.advance(2 * 86_400)
    failed = events[-1]["data"]["object"]["id"]
    events += stripe_api.pay_invoice(failed)
    ids = sorted({str(e["data"]["object"]["id"]) for e in events})
    ids += sorted({str(e["data"]["object"]["customer"]) for e in events})
    return events, ids


@pytest.fixture(scope="module")
async def recorded(
    stripe_api: StripeDouble, db: BillingDb
) -> tuple[list[dict[str, Any]], list[str]]:
    _, _, session = await checkout(stripe_api, db, "premium_monthly")
    return lifecycle(stripe_api, session)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(order=st.permutations(range(9)))
async def test_every_arrival_order_of_a_subscription_ends_in_the_same_state(
    db: BillingDb, recorded: tuple[list[dict[str, Any]], list[str]], order: list[int]
) -> None:
    base, ids = recorded
    assert len(base) == 9
    suffix = uuid.uuid4().hex[:8]
    events = with_suffix(base, ids, suffix)
    user = f"user-{suffix}"
    customer = next(i for i in ids if i.startswith("cus_"))
    await db.add_customer(user, f"{customer}_{suffix}")
    for i in order:
        # the provider re-sends: every event arrives twice, in any order
        await receive(db.transactions, events[i], BILLING, datetime.now(UTC))
    await receive(db.transactions, events[order[0]], BILLING, datetime.now(UTC))

    (sub,) = await repo.subscriptions_of(user, None)
    last = events[-1]["data"]["object"]  # the provider's final word on the subscription
    assert (sub.status, sub.cancel_at_period_end) == ("active", False)
    assert int(sub.current_period_end.timestamp()) == last["current_period_end"]
    invoices = await repo.invoices_of(user, None)
    assert len(invoices) == 2
    assert all(i.paid for i in invoices)
    decision = await current_decision(user, datetime.now(UTC), GRACE)
    assert decision.plan == "premium_monthly"
    assert decision.limits == PLANS["premium_monthly"].limits
    assert decision.valid_until == sub.current_period_end + GRACE


async def test_concurrent_spends_never_overdraw(db: BillingDb) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"

    async def grant(tx: Any) -> None:
        await grant_credits(tx, user, 25, "purchase:cs_concurrent")

    await db.transactions(grant)

    async def spend(n: int, amount: int) -> int:
        async def use_case(tx: Any) -> int:
            return (await spend_credits(tx, user, amount, f"use-{n}")).delta

        try:
            return -await db.transactions(use_case)
        except InsufficientCredits:
            return 0
        except Conflict:
            return -1

    spent = await asyncio.gather(*(spend(n, 1 + n % 3) for n in range(40)))
    assert -1 not in spent, "a spend gave up under contention"

    balance = await repo.balance(user)
    entries = await repo.ledger(user)
    assert balance >= 0
    assert sum(spent) + balance == 25
    assert sum(e["delta"] for e in entries) == balance
    assert sorted(e["balance_after"] for e in entries) == sorted(
        {e["balance_after"] for e in entries}
    ), "two spends saw the same balance"
    assert balance < 3, "spends were refused while credits remained"
