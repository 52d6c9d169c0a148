"""Webhook handling and the credit ledger against a real MongoDB server (no HTTP).

Replays, arrival order and concurrent spends are properties of the service layer and its
transactions, so they are exercised here in volume; the HTTP tests cover the edge.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sonata_kit import Conflict
from sonata_payment.adapters import repository as repo
from sonata_payment.service_layer.credits import InsufficientCredits, grant_credits, spend_credits
from sonata_payment.service_layer.entitlements import current_decision
from sonata_payment.service_layer.webhooks import Billing, receive
from sonata_testing.stripe_double import StripeDouble

sys.path.insert(0, str(Path(__file__).parent))

from payment_test_support import (
    BillingDb,
    api,
    checkout_form,
    clone_subscriptions,
    double,
    provider,
    with_suffix,
)

pytestmark = pytest.mark.integration

GRACE = timedelta(days=3)
DAY = 86_400


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[StripeDouble]:
    with double() as server:
        yield server


@pytest.fixture(scope="module")
def billing(stripe_api: StripeDouble) -> Billing:
    return Billing(
        grace=GRACE,
        items_by_price={
            "price_premium_monthly": "premium_monthly",
            "price_credits_10": "credits_10",
        },
        provider=provider(stripe_api),
    )


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
    session = api(stripe_api, "POST", "/v1/checkout/sessions", checkout_form(customer, user, item))
    return user, customer, session["id"]


async def test_a_thousand_replays_of_one_webhook_have_one_effect(
    stripe_api: StripeDouble, db: BillingDb, billing: Billing
) -> None:
    user, _, session = await checkout(stripe_api, db, "credits_10")
    (completed,) = stripe_api.complete_checkout(session)
    now = datetime.now(UTC)

    outcomes: list[str] = []
    for _ in range(20):  # 1,000 deliveries, 50 at a time
        outcomes += await asyncio.gather(
            *(receive(db.transactions, completed, billing, now) for _ in range(50))
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


@dataclass
class Scenario:
    """One customer's recorded history at the provider, and what it must end in."""

    name: str
    events: list[dict[str, Any]]
    subscriptions: list[str]
    customer: str
    at: datetime  # the provider's clock when the history ends
    expected: Outcome


@dataclass(frozen=True)
class Outcome:
    plan: str
    valid_until: datetime | None
    told: tuple[str, datetime | None]  # the last entitlement published
    subscriptions: tuple[tuple[str, bool, datetime], ...]
    invoices: tuple[tuple[str, int, int], ...]  # status, attempts, refunded cents
    credits: int


def _last(stripe_api: StripeDouble, kind: str, field: str = "id") -> str:
    return str(
        next(e for e in reversed(stripe_api.events) if e["type"] == kind)["data"]["object"][field]
    )


def _charge_of_invoice(stripe_api: StripeDouble, invoice_id: str) -> str:
    intent = stripe_api.objects[invoice_id]["payments"]["data"][0]["payment"]["payment_intent"]
    return next(
        o["id"]
        for o in stripe_api.objects.values()
        if o["object"] == "charge" and o["payment_intent"] == intent
    )


def _buy(stripe_api: StripeDouble, customer: str, item: str) -> list[dict[str, Any]]:
    form = checkout_form(customer, "user-recorded", item)
    return stripe_api.complete_checkout(
        api(stripe_api, "POST", "/v1/checkout/sessions", form)["id"]
    )


def _period_end(stripe_api: StripeDouble, sub_id: str) -> datetime:
    return datetime.fromtimestamp(stripe_api.objects[sub_id]["current_period_end"], UTC)


def record_scenarios(stripe_api: StripeDouble) -> list[Scenario]:
    """Four histories, each step through the double as the customer or merchant would."""
    scenarios: list[Scenario] = []

    def start() -> tuple[str, list[dict[str, Any]], str]:
        customer = api(stripe_api, "POST", "/v1/customers", "email=recorded%40example.org")["id"]
        events = _buy(stripe_api, customer, "premium_monthly")
        return customer, events, _last(stripe_api, "customer.subscription.created")

    def update(sub_id: str, form: str) -> dict[str, Any]:
        api(stripe_api, "POST", f"/v1/subscriptions/{sub_id}", form)
        return stripe_api.events[-1]

    # A: cancel at period end and resume, a renewal fails twice and is paid; the first
    # period's charge is refunded in part (an older period: access stays)
    customer, events, sub = start()
    first_invoice = _last(stripe_api, "invoice.paid")
    for form in ("cancel_at_period_end=true", "cancel_at_period_end=false"):
        stripe_api.advance(3600)
        events.append(update(sub, form))
    stripe_api.advance(30 * DAY)
    events += stripe_api.fail_renewal(sub)
    failed = _last(stripe_api, "invoice.payment_failed")
    stripe_api.advance(DAY)
    events += stripe_api.retry_fails(failed)
    stripe_api.advance(DAY)
    events += stripe_api.pay_invoice(failed)
    events += stripe_api.refund(_charge_of_invoice(stripe_api, first_invoice), 300)
    end = _period_end(stripe_api, sub)
    scenarios.append(
        Scenario(
            "recovered renewal", events, [sub], customer, _now(stripe_api),
            Outcome(
                "premium_monthly", end + GRACE, ("premium_monthly", end + GRACE),
                (("active", False, end),), (("paid", 1, 300), ("paid", 3, 0)), 0,
            ),
        )
    )  # fmt: skip

    # B: subscribe, cancel, resume and cancel again in one second (only the provider knows
    # the last), a credit pack refunded twice in part
    stripe_api.frozen_at = stripe_api.now()
    try:
        customer, events, sub = start()
        for form in ("cancel_at_period_end=true", "cancel_at_period_end=false"):
            events.append(update(sub, form))
        events.append(update(sub, "cancel_at_period_end=true"))
    finally:
        stripe_api.frozen_at = None
    stripe_api.advance(DAY)
    events += _buy(stripe_api, customer, "credits_10")
    pack = _last(stripe_api, "checkout.session.completed", "payment_intent")
    charge = next(
        o["id"]
        for o in stripe_api.objects.values()
        if o["object"] == "charge" and o["payment_intent"] == pack
    )
    stripe_api.advance(60)
    events += stripe_api.refund(charge, 200)  # 2 of 10 credits back (4.01 of 4.99 EUR)
    stripe_api.advance(60)
    events += stripe_api.refund(charge, 100)  # 300 of 499 in all: 6 credits
    end = _period_end(stripe_api, sub)
    scenarios.append(
        Scenario(
            "same-second cancel", events, [sub], customer, _now(stripe_api),
            Outcome(
                "premium_monthly", end, ("premium_monthly", end),
                (("active", True, end),), (("paid", 1, 0),), 4,
            ),
        )
    )  # fmt: skip

    # C: a renewal fails and is written off; the next one is paid: the old failure, whenever
    # it arrives, takes nothing from the period now paid
    customer, events, sub = start()
    stripe_api.advance(30 * DAY)
    events += stripe_api.fail_renewal(sub)
    written_off = _last(stripe_api, "invoice.payment_failed")
    stripe_api.advance(4 * DAY)
    events += stripe_api.mark_uncollectible(written_off)
    stripe_api.advance(26 * DAY)
    events += stripe_api.renew(sub)
    end = _period_end(stripe_api, sub)
    scenarios.append(
        Scenario(
            "renewed after a written-off failure", events, [sub], customer, _now(stripe_api),
            Outcome(
                "premium_monthly", end + GRACE, ("premium_monthly", end + GRACE),
                (("active", False, end),),
                (("paid", 1, 0), ("paid", 1, 0), ("uncollectible", 1, 0)), 0,
            ),
        )
    )  # fmt: skip

    # D: paused, then deleted; its invoice refunded in full
    customer, events, sub = start()
    invoice = _last(stripe_api, "invoice.paid")
    stripe_api.advance(DAY)
    events += stripe_api.pause(sub)
    stripe_api.advance(DAY)
    api(stripe_api, "DELETE", f"/v1/subscriptions/{sub}")
    events.append(stripe_api.events[-1])
    events += stripe_api.refund(_charge_of_invoice(stripe_api, invoice))
    end = _period_end(stripe_api, sub)
    scenarios.append(
        Scenario(
            "paused then deleted", events, [sub], customer, _now(stripe_api),
            Outcome(
                "free", None, ("free", None), (("canceled", False, end),), (("paid", 1, 999),), 0,
            ),
        )
    )  # fmt: skip
    return scenarios


def _now(stripe_api: StripeDouble) -> datetime:
    return datetime.fromtimestamp(stripe_api.now(), UTC)


@pytest.fixture(scope="module")
def scenarios(stripe_api: StripeDouble) -> list[Scenario]:
    return record_scenarios(stripe_api)


async def outcome(user: str, at: datetime) -> Outcome:
    decision = await current_decision(user, at, GRACE)
    told = await repo.entitlement(user, None)
    assert told is not None
    subs = await repo.subscriptions_of(user, None)
    invoices = await repo.invoices_of(user, None)
    return Outcome(
        plan=decision.plan,
        valid_until=decision.valid_until,
        told=(told["plan"], told["valid_until"]),
        subscriptions=tuple(
            sorted((s.status, s.cancel_at_period_end, s.current_period_end) for s in subs)
        ),
        invoices=tuple(sorted((i.status, i.attempt_count, i.refunded_cents) for i in invoices)),
        credits=await repo.balance(user),
    )


async def replay(
    db: BillingDb,
    stripe_api: StripeDouble,
    billing: Billing,
    scenario: Scenario,
    deliveries: list[int],
) -> Outcome:
    """The scenario's events, about fresh objects, delivered in the order given."""
    suffix = uuid.uuid4().hex[:8]
    events = with_suffix(scenario.events, suffix)
    clone_subscriptions(stripe_api, scenario.subscriptions, suffix)
    user = f"user-{suffix}"
    await db.add_customer(user, f"{scenario.customer}_{suffix}")
    for i in deliveries:
        await receive(db.transactions, events[i], billing, datetime.now(UTC))
    return await outcome(user, scenario.at)


async def test_each_history_delivered_in_order_ends_where_the_provider_did(
    db: BillingDb, stripe_api: StripeDouble, billing: Billing, scenarios: list[Scenario]
) -> None:
    for scenario in scenarios:
        in_order = list(range(len(scenario.events)))
        assert await replay(db, stripe_api, billing, scenario, in_order) == scenario.expected, (
            scenario.name
        )


@st.composite
def deliveries(draw: st.DrawFn, size: int) -> list[int]:
    """Every event in any order, and a few of them (any) delivered again anywhere."""
    order = draw(st.permutations(range(size)))
    for event, at in draw(
        st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, size)), max_size=4)
    ):
        order.insert(at, event)
    return order


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_every_arrival_order_with_replays_ends_in_the_in_order_state(
    db: BillingDb,
    stripe_api: StripeDouble,
    billing: Billing,
    scenarios: list[Scenario],
    data: st.DataObject,
) -> None:
    scenario = data.draw(st.sampled_from(scenarios), label="scenario")
    order = data.draw(deliveries(len(scenario.events)), label="deliveries")
    assert await replay(db, stripe_api, billing, scenario, order) == scenario.expected


async def test_concurrent_spends_never_overdraw(db: BillingDb) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"

    async def grant(tx: Any) -> None:
        await grant_credits(tx, user, 25, "purchase:cs_concurrent", datetime.now(UTC))

    await db.transactions(grant)

    async def spend(n: int, amount: int) -> int:
        async def use_case(tx: Any) -> int:
            return (await spend_credits(tx, user, amount, f"use-{n}", datetime.now(UTC))).delta

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
    # each spend tells consumers what it paid for, in the client's own words
    told = [json.loads(d["body"]) async for d in db.database.outbox.find({})]
    mine = [(e["reason"], e["reference"]) for e in told if e["user_id"] == user]
    assert sorted(mine) == sorted(
        [("purchase", None)] + [("spend", f"use-{n}") for n, s in enumerate(spent) if s]
    )
