"""payment as a real process against the local Stripe API: pricing, checkout, webhooks, credits,
and what auth's events do to customers."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from bson import json_util
from pymongo import AsyncMongoClient
from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_testing import (
    JwksServer,
    ServiceProcess,
    SigningKey,
    TokenFactory,
    eventually,
    publish_events,
)
from sonata_testing.stripe_double import StripeDouble, sign

sys.path.insert(0, str(Path(__file__).parent))

from payment_test_support import API_KEY, WEBHOOK_SECRET, double

pytestmark = pytest.mark.integration

KEY = SigningKey()
TOKENS = TokenFactory(KEY)


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[StripeDouble]:
    with double() as server:
        yield server


@pytest.fixture(scope="module")
def payment(
    mongo_url: str, amqp_url: str, stripe_api: StripeDouble, tmp_path_factory: Any
) -> Iterator[ServiceProcess]:
    with JwksServer([KEY.jwk]) as jwks:
        service = ServiceProcess(
            "payment",
            "sonata_payment.main:create_app",
            {
                "ENVIRONMENT": "test",
                "MONGODB_URL": mongo_url,
                "MONGODB_DB": f"payment_http_{uuid.uuid4().hex[:8]}",
                "AMQP_URL": amqp_url,
                "AUTH_JWKS_URL": jwks.url,
                "STRIPE_API_BASE": stripe_api.url,
                "STRIPE_API_KEY": API_KEY,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "LOG_LEVEL": "WARNING",
            },
            log_dir=tmp_path_factory.mktemp("payment-http"),
        )
        service.start()
        stripe_api.webhook_url = f"{service.base_url}/v1/webhooks/stripe"
        try:
            yield service
        finally:
            service.stop()
            log = service.log_path.read_text(errors="replace")
            assert "Traceback" not in log, log[-4000:]


class Seen:
    """Every status this module's clients saw, to prove none was a server error."""

    statuses: ClassVar[list[tuple[int, str]]] = []

    @classmethod
    async def hook(cls, response: httpx.Response) -> None:
        cls.statuses.append((response.status_code, response.request.url.path))


@pytest.fixture(scope="module")
async def http(payment: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=payment.base_url, timeout=30, event_hooks={"response": [Seen.hook]}
    ) as client:
        # the kit's verifier answers 503 to requests racing its very first JWKS fetch: warm it
        assert (await client.get("/v1/credits", headers=as_user("warm-up"))).status_code == 200
        yield client
    assert [s for s in Seen.statuses if s[0] >= 500] == []


def as_user(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.sign(TOKENS.claims(sub=user))}"}


async def test_pricing_is_public_and_lists_every_plan_with_its_limits(
    http: httpx.AsyncClient,
) -> None:
    body = (await http.get("/v1/plans")).json()
    plans = {p["key"]: p for p in body["plans"]}
    assert set(plans) == {"free", "premium_monthly", "premium_yearly", "lifetime"}
    assert plans["free"]["limits"]["scored_sessions_per_day"] == 3
    assert plans["premium_monthly"]["limits"]["scored_sessions_per_day"] is None
    assert plans["premium_yearly"]["interval"] == "year"
    assert plans["lifetime"]["kind"] == "one_time"
    assert {p["key"]: p["credits"] for p in body["credit_packs"]} == {
        "credits_10": 10,
        "credits_50": 50,
    }


async def test_a_retried_checkout_never_creates_a_second_session(
    http: httpx.AsyncClient, stripe_api: StripeDouble
) -> None:
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    user = as_user(user_id)
    same = await asyncio.gather(
        *(
            http.post("/v1/checkout", json={"item": "premium_yearly"}, headers=user)
            for _ in range(5)
        )
    )
    keyed = [
        await http.post(
            "/v1/checkout",
            json={"item": "credits_10"},
            headers={**user, "Idempotency-Key": "basket-7"},
        )
        for _ in range(2)
    ]
    assert {r.status_code for r in same + keyed} == {201}
    assert len({r.json()["session_id"] for r in same}) == 1
    assert len({r.json()["session_id"] for r in keyed}) == 1
    assert same[0].json()["url"].startswith(stripe_api.url)
    created = {
        o["id"]
        for o in stripe_api.objects.values()
        if o["object"] == "checkout.session" and o["metadata"]["user_id"] == user_id
    }
    assert created == {same[0].json()["session_id"], keyed[0].json()["session_id"]}

    unknown = await http.post("/v1/checkout", json={"item": "platinum"}, headers=user)
    anonymous = await http.post("/v1/checkout", json={"item": "credits_10"})
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unknown_item")
    assert anonymous.status_code == 401


def forgeries(event: dict[str, Any], body: bytes) -> list[tuple[str, bytes, dict[str, str]]]:
    now = int(time.time())
    text = body.decode()
    tampered = text.replace(event["id"], event["id"] + "x")
    return [
        ("no header", body, {}),
        ("wrong secret", body, {"Stripe-Signature": sign(text, "whsec_someone_else", now)}),
        ("stale", body, {"Stripe-Signature": sign(text, WEBHOOK_SECRET, now - 301)}),
        ("far stale", body, {"Stripe-Signature": sign(text, WEBHOOK_SECRET, now - 86_400)}),
        ("future", body, {"Stripe-Signature": sign(text, WEBHOOK_SECRET, now + 900)}),
        ("tampered body", tampered.encode(), {"Stripe-Signature": sign(text, WEBHOOK_SECRET, now)}),
        ("garbage header", body, {"Stripe-Signature": "t=abc,v1=zz"}),
        ("no v1", body, {"Stripe-Signature": f"t={now}"}),
        ("not json", b"\xff\xfe", {"Stripe-Signature": sign("\xff", WEBHOOK_SECRET, now)}),
    ]


async def test_every_forged_stale_or_future_webhook_is_rejected(
    http: httpx.AsyncClient, stripe_api: StripeDouble
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    r = await http.post("/v1/checkout", json={"item": "credits_50"}, headers=as_user(user))
    stripe_api.webhook_url, saved = None, stripe_api.webhook_url
    try:
        (completed,) = stripe_api.complete_checkout(r.json()["session_id"])
    finally:
        stripe_api.webhook_url = saved
    body, _ = stripe_api.signed(completed)
    attempts = forgeries(completed, body) * 10
    rejected = await asyncio.gather(
        *(http.post("/v1/webhooks/stripe", content=b, headers=h) for _, b, h in attempts)
    )
    assert [(name, r.status_code) for (name, _, _), r in zip(attempts, rejected, strict=True)] == [
        (name, 400) for name, _, _ in attempts
    ]
    assert (await http.get("/v1/credits", headers=as_user(user))).json()["balance"] == 0

    odd = {**completed, "id": "evt_odd", "type": "customer.subscription.updated"}
    customer = completed["data"]["object"]["customer"]
    # a subscription of a known plan, without the status every subscription has
    odd["data"] = {
        "object": {"id": "sub_odd", "customer": customer, "metadata": {"item": "premium_monthly"}}
    }
    signed_but_malformed = await http.post(
        "/v1/webhooks/stripe", content=stripe_api.signed(odd)[0], headers=stripe_api.signed(odd)[1]
    )
    assert (signed_but_malformed.status_code, signed_but_malformed.json()["error"]) == (
        422,
        "malformed_event",
    )

    genuine = stripe_api.deliver(completed)
    assert genuine.status_code == 200, genuine.text
    assert (await http.get("/v1/credits", headers=as_user(user))).json()["balance"] == 50


async def test_credits_bought_spent_concurrently_and_refunded_never_go_below_zero(
    http: httpx.AsyncClient, stripe_api: StripeDouble
) -> None:
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    user = as_user(user_id)
    r = await http.post("/v1/checkout", json={"item": "credits_10"}, headers=user)
    stripe_api.complete_checkout(r.json()["session_id"])
    stripe_api.wait_delivered()

    async def balance() -> int:
        value: int = (await http.get("/v1/credits", headers=user)).json()["balance"]
        return value

    assert await balance() == 10
    spends = await asyncio.gather(
        *(
            http.post("/v1/credits/spend", json={"credits": 1, "reference": f"c{n}"}, headers=user)
            for n in range(16)
        )
    )
    assert sorted(s.status_code for s in spends) == [200] * 10 + [402] * 6
    assert {s.json()["error"] for s in spends if s.status_code == 402} == {"insufficient_credits"}
    done = next(n for n, s in enumerate(spends) if s.status_code == 200)
    again = await http.post(
        "/v1/credits/spend", json={"credits": 1, "reference": f"c{done}"}, headers=user
    )
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert again.json()["entry_id"] == spends[done].json()["entry_id"]
    assert await balance() == 0

    customer = next(
        m["customer"]
        for _, p, m in stripe_api.requests
        if p == "/v1/checkout/sessions" and m.get("metadata", {}).get("user_id") == user_id
    )
    (charge,) = stripe_api.charges_of(customer)
    stripe_api.refund(charge["id"])
    stripe_api.wait_delivered()
    ledger = (await http.get("/v1/credits", headers=user)).json()
    assert ledger["balance"] == 0
    assert [e["reason"] for e in ledger["entries"]].count("refund") == 1
    receipts = (await http.get("/v1/invoices", headers=user)).json()
    assert [(i["kind"], i["amount_cents"], i["refunded_cents"]) for i in receipts] == [
        ("receipt", 499, 499)
    ]


async def test_subscription_cancel_resume_portal_and_invoices(
    http: httpx.AsyncClient, stripe_api: StripeDouble
) -> None:
    user = as_user(f"user-{uuid.uuid4().hex[:8]}")
    assert (await http.post("/v1/subscription/cancel", headers=user)).status_code == 404
    assert (await http.post("/v1/billing-portal", headers=user)).status_code == 404
    r = await http.post("/v1/checkout", json={"item": "premium_monthly"}, headers=user)
    # Stripe stamps events to the second: here every state of this subscription shares one,
    # so only the provider's current object can say which came last
    stripe_api.frozen_at = stripe_api.now()
    stripe_api.complete_checkout(r.json()["session_id"])
    stripe_api.wait_delivered()

    async def me() -> dict[str, Any]:
        body: dict[str, Any] = (await http.get("/v1/billing/me", headers=user)).json()
        return body

    assert (await me())["plan"] == "premium_monthly"
    second = await http.post("/v1/checkout", json={"item": "premium_yearly"}, headers=user)
    assert (second.status_code, second.json()["error"]) == (409, "already_subscribed")

    assert (await http.post("/v1/subscription/cancel", headers=user)).status_code == 202

    async def cancelling(flag: bool) -> bool:
        return bool((await me())["subscriptions"][0]["cancel_at_period_end"] is flag)

    await eventually(lambda: cancelling(True), "cancel at period end to arrive", within=15)
    assert (await http.post("/v1/subscription/resume", headers=user)).status_code == 202
    await eventually(lambda: cancelling(False), "the resume to arrive", within=15)
    stripe_api.frozen_at = None
    asked = [p for m, p, _ in stripe_api.requests if m == "GET" and "/subscriptions/" in p]
    assert asked, "same-second states were ordered without asking the provider"
    assert (await me())["plan"] == "premium_monthly"

    portal = await http.post("/v1/billing-portal", headers=user)
    assert portal.status_code == 200
    assert portal.json()["url"].startswith(stripe_api.url)
    invoices = (await http.get("/v1/invoices", headers=user)).json()
    assert [(i["kind"], i["amount_cents"], i["paid"]) for i in invoices] == [("invoice", 999, True)]


async def test_a_deleted_user_is_cancelled_at_the_provider_and_erased_but_the_books_stay(
    http: httpx.AsyncClient, stripe_api: StripeDouble, payment: ServiceProcess, amqp_url: str
) -> None:
    user, bystander = (f"user-{uuid.uuid4().hex[:6]}" for _ in range(2))
    await publish_events(
        amqp_url,
        [
            UserRegistered(
                user_id=uid,
                email=f"{uid}@example.org",
                display_name=uid,
                roles=["student"],
                locale="en",
                timezone="UTC",
            )
            for uid in (user, bystander)
        ],
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(payment.env["MONGODB_URL"])
    database = client[payment.env["MONGODB_DB"]]
    try:

        async def both_customers() -> bool:
            found = {"user_id": {"$in": [user, bystander]}}
            return await database.customers.count_documents(found) == 2

        await eventually(both_customers, "two customer records")
        r = await http.post("/v1/checkout", json={"item": "premium_yearly"}, headers=as_user(user))
        events = stripe_api.complete_checkout(r.json()["session_id"])
        stripe_api.wait_delivered()
        sub_id = events[1]["data"]["object"]["id"]
        customer_id = stripe_api.objects[sub_id]["customer"]
        assert stripe_api.objects[customer_id]["email"] == f"{user}@example.org"

        await publish_events(amqp_url, [UserDeleted(user_id=user)])

        async def erased() -> bool:
            return await database.customers.count_documents({"user_id": user}) == 0

        await eventually(erased, "the deleted user's customer record to go")
        stripe_api.wait_delivered()
        assert stripe_api.objects[sub_id]["status"] == "canceled"
        kept = await database.customers.find_one({"provider_customer_id": customer_id})
        assert kept is not None
        assert (kept["email"], kept["display_name"]) == (None, None)
        assert kept["user_id"].startswith("erased:")
        books = [doc async for doc in database.invoices.find({"user_id": kept["user_id"]})]
        assert [(i["amount_cents"], i["paid"]) for i in books] == [(9900, True)]
        assert await database.invoices.count_documents({"user_id": user}) == 0
        assert await database.customers.count_documents({"user_id": bystander}) == 1
        gone = (await http.get("/v1/invoices", headers=as_user(user))).json()
        assert gone == []

        # the customer is gone at the provider too, and its last webhooks (the subscription
        # cancelled, the customer deleted) are applied without bringing the user back
        assert stripe_api.objects[customer_id].get("deleted") is True
        assert "email" not in stripe_api.objects[customer_id]
        late = {e["id"] for e in stripe_api.events[-2:]}
        assert {e["type"] for e in stripe_api.events[-2:]} == {
            "customer.subscription.deleted",
            "customer.deleted",
        }
        assert {(i, s) for i, s in stripe_api.deliveries if i in late} == {(i, 200) for i in late}
        for name in await database.list_collection_names():
            async for doc in database[name].find({}):
                text = json_util.dumps(doc)
                assert user not in text, (name, doc)
                assert f"{user}@example.org" not in text, (name, doc)
        assert await database.customers.count_documents({"user_id": bystander}) == 1
    finally:
        await client.close()


async def test_lifetime_is_bought_once_and_a_refund_takes_it_back(
    http: httpx.AsyncClient, stripe_api: StripeDouble
) -> None:
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    user = as_user(user_id)
    r = await http.post("/v1/checkout", json={"item": "lifetime"}, headers=user)
    stripe_api.complete_checkout(r.json()["session_id"])
    stripe_api.wait_delivered()
    me = (await http.get("/v1/billing/me", headers=user)).json()
    assert (me["plan"], me["valid_until"], me["limits"]["teacher_seats"]) == ("lifetime", None, 5)

    customer = stripe_api.objects[r.json()["session_id"]]["customer"]
    (charge,) = stripe_api.charges_of(customer)
    stripe_api.refund(charge["id"])
    stripe_api.wait_delivered()
    assert (await http.get("/v1/billing/me", headers=user)).json()["plan"] == "free"


@pytest.fixture(scope="module")
async def database(payment: ServiceProcess) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        payment.env["MONGODB_URL"], tz_aware=True
    )
    yield client[payment.env["MONGODB_DB"]]
    await client.close()


async def me(http: httpx.AsyncClient, user: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = (await http.get("/v1/billing/me", headers=user)).json()
    return body


async def subscribe(
    http: httpx.AsyncClient, stripe_api: StripeDouble, user: dict[str, str]
) -> tuple[str, str]:
    """Premium monthly bought and its webhooks delivered: (subscription id, customer id)."""
    r = await http.post("/v1/checkout", json={"item": "premium_monthly"}, headers=user)
    events = stripe_api.complete_checkout(r.json()["session_id"])
    stripe_api.wait_delivered()
    sub = next(e for e in events if e["type"] == "customer.subscription.created")
    return sub["data"]["object"]["id"], sub["data"]["object"]["customer"]


class held:  # noqa: N801 - reads as a phrase: `with held(stripe_api):`
    """The double's events are recorded but not delivered, for the test to deliver in turn."""

    def __init__(self, stripe_api: StripeDouble) -> None:
        self.stripe_api = stripe_api

    def __enter__(self) -> None:
        self.url, self.stripe_api.webhook_url = self.stripe_api.webhook_url, None

    def __exit__(self, *exc: object) -> None:
        self.stripe_api.webhook_url = self.url


def deliver(stripe_api: StripeDouble, *events: dict[str, Any]) -> list[httpx.Response]:
    return [stripe_api.deliver(e) for e in events]


async def test_a_paused_subscription_ends_premium_and_an_unknown_status_is_dead_lettered(
    http: httpx.AsyncClient, stripe_api: StripeDouble, database: Any
) -> None:
    user = as_user(f"user-{uuid.uuid4().hex[:8]}")
    sub_id, _ = await subscribe(http, stripe_api, user)
    assert (await me(http, user))["plan"] == "premium_monthly"

    stripe_api.advance(60)
    paused = stripe_api.pause(sub_id)
    stripe_api.wait_delivered()
    state = await me(http, user)
    assert (state["plan"], state["subscriptions"][0]["status"]) == ("free", "paused")
    assert [d for d in stripe_api.deliveries if d[0] in {e["id"] for e in paused}] == [
        (e["id"], 200) for e in paused
    ]

    strange = json.loads(json.dumps(paused[-1]))
    strange["id"] = f"evt_strange_{uuid.uuid4().hex[:8]}"
    strange["created"] += 60
    strange["data"]["object"]["status"] = "hibernating"
    for _ in range(2):  # Stripe's retry gets the same answer, and nothing is applied
        (refused,) = deliver(stripe_api, strange)
        assert (refused.status_code, refused.json()["error"]) == (422, "unknown_status")
        assert "hibernating" in refused.json()["detail"]
    row = await database.provider_events.find_one({"event_id": strange["id"]})
    assert row["handled_at"] is None
    assert row["rejected_at"] is not None
    assert "hibernating" in row["error"]
    assert (await me(http, user))["subscriptions"][0]["status"] == "paused"


async def test_signed_events_of_an_odd_shape_are_refused_with_the_field_never_a_500(
    http: httpx.AsyncClient, stripe_api: StripeDouble, database: Any
) -> None:
    user = as_user(f"user-{uuid.uuid4().hex[:8]}")
    sub_id, customer = await subscribe(http, stripe_api, user)
    sub = dict(stripe_api.objects[sub_id])
    odd: list[tuple[str, dict[str, Any], str]] = [
        ("customer.subscription.updated", {**sub, "items": ["not", "a", "list object"]}, "items"),
        ("customer.subscription.updated", {**sub, "metadata": "premium"}, "metadata"),
        ("customer.subscription.updated", {**sub, "cancel_at_period_end": "maybe"}, "cancel"),
        (
            "customer.subscription.updated",
            {**sub, "current_period_end": 10**15, "items": {"data": []}},
            "current_period_end",
        ),
        ("invoice.paid", {"id": "in_odd", "customer": customer, "created": "today"}, "created"),
        (
            "invoice.payment_failed",
            {"id": "in_odd", "customer": customer, "created": 1, "amount_due": -5},
            "amount_due",
        ),
        ("charge.refunded", {"id": "ch_odd", "customer": customer, "created": 1}, "amount"),
        ("checkout.session.completed", {"id": 7, "created": 1}, "id"),
        (
            "checkout.session.completed",
            {"id": "cs_odd", "created": 1, "mode": "payment", "payment_status": "paid",
             "customer": customer, "metadata": {"item": "credits_10"}},
            "payment_intent",
        ),
    ]  # fmt: skip
    for n, (kind, obj, field) in enumerate(odd):
        event = {
            "id": f"evt_odd_{uuid.uuid4().hex[:8]}_{n}",
            "object": "event",
            "type": kind,
            "created": stripe_api.now(),
            "data": {"object": obj},
        }
        (r,) = deliver(stripe_api, event)
        assert (r.status_code, r.json()["error"]) == (422, "malformed_event"), (kind, r.text)
        assert field in r.json()["detail"], r.text
        row = await database.provider_events.find_one({"event_id": event["id"]})
        assert row["rejected_at"] is not None
        assert row["handled_at"] is None
    assert (await me(http, user))["plan"] == "premium_monthly"


async def outbox_count(database: Any, name: str, user_id: str) -> int:
    return len(
        [
            doc
            async for doc in database.outbox.find({"name": name})
            if json.loads(doc["body"])["user_id"] == user_id
        ]
    )


async def test_a_late_failure_of_an_older_period_neither_downgrades_nor_dunns_twice(
    http: httpx.AsyncClient, stripe_api: StripeDouble, database: Any
) -> None:
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    user = as_user(user_id)
    sub_id, _ = await subscribe(http, stripe_api, user)
    with held(stripe_api):
        stripe_api.advance(30 * 86_400)
        past_due, first = stripe_api.fail_renewal(sub_id)
        invoice = first["data"]["object"]["id"]
        stripe_api.advance(86_400)
        (second,) = stripe_api.retry_fails(invoice)
    # the second attempt's notice arrives before the first's, and the first is re-sent
    assert [r.status_code for r in deliver(stripe_api, past_due, second, first, first)] == [200] * 4
    failed_at = datetime.fromtimestamp(first["created"], UTC)
    state = await me(http, user)
    assert state["plan"] == "premium_monthly"
    assert datetime.fromisoformat(state["valid_until"]) == failed_at + timedelta(days=7)
    notices = "payment.payment_failed.v1"
    await eventually(lambda: _count_is(database, notices, user_id, 1), "one dunning notice")

    with held(stripe_api):
        stripe_api.advance(6 * 86_400)
        renewed = stripe_api.renew(sub_id)  # the customer paid the next period
        (late,) = stripe_api.retry_fails(invoice)  # the old period's invoice fails again
        (voided,) = stripe_api.void_invoice(invoice)
    assert [r.status_code for r in deliver(stripe_api, *renewed)] == [200, 200]
    period_end = datetime.fromtimestamp(stripe_api.objects[sub_id]["current_period_end"], UTC)
    renewed_until = period_end + timedelta(days=7)
    assert datetime.fromisoformat((await me(http, user))["valid_until"]) == renewed_until
    assert [r.status_code for r in deliver(stripe_api, late, voided)] == [200, 200]
    state = await me(http, user)
    assert (state["plan"], datetime.fromisoformat(state["valid_until"])) == (
        "premium_monthly",
        renewed_until,
    )
    assert await outbox_count(database, notices, user_id) == 1
    listed = {i["id"]: i for i in (await http.get("/v1/invoices", headers=user)).json()}
    assert listed[invoice]["status"] == "void"


async def _count_is(database: Any, name: str, user_id: str, n: int) -> bool:
    return await outbox_count(database, name, user_id) == n


async def test_partial_refunds_take_back_their_share_and_invoice_refunds_are_matched(
    http: httpx.AsyncClient, stripe_api: StripeDouble
) -> None:
    user = as_user(f"user-{uuid.uuid4().hex[:8]}")
    r = await http.post("/v1/checkout", json={"item": "credits_50"}, headers=user)
    stripe_api.complete_checkout(r.json()["session_id"])
    stripe_api.wait_delivered()
    customer = stripe_api.objects[r.json()["session_id"]]["customer"]
    (pack,) = stripe_api.charges_of(customer)

    async def balance() -> int:
        value: int = (await http.get("/v1/credits", headers=user)).json()["balance"]
        return value

    stripe_api.refund(pack["id"], 1000)  # 10.00 of 19.99 EUR: 25 of 50 credits
    stripe_api.wait_delivered()
    assert await balance() == 25
    stripe_api.refund(pack["id"])  # the rest
    stripe_api.wait_delivered()
    assert await balance() == 0

    sub_id, _ = await subscribe(http, stripe_api, user)
    (charge,) = [c for c in stripe_api.charges_of(customer) if c["id"] != pack["id"]]
    stripe_api.refund(charge["id"], 499)  # a goodwill partial refund keeps the period
    stripe_api.wait_delivered()
    assert (await me(http, user))["plan"] == "premium_monthly"
    stripe_api.refund(charge["id"])  # all of it: the period's access goes with the money
    stripe_api.wait_delivered()
    assert (await me(http, user))["plan"] == "free"
    listed = (await http.get("/v1/invoices", headers=user)).json()
    assert sorted((i["kind"], i["amount_cents"], i["refunded_cents"]) for i in listed) == [
        ("invoice", 999, 999),
        ("receipt", 1999, 1999),
    ]
    assert stripe_api.objects[sub_id]["status"] == "active"


async def test_an_expired_checkout_releases_its_order_for_a_new_session(
    http: httpx.AsyncClient, stripe_api: StripeDouble, database: Any
) -> None:
    user = as_user(f"user-{uuid.uuid4().hex[:8]}")
    first = await http.post("/v1/checkout", json={"item": "premium_yearly"}, headers=user)
    again = await http.post("/v1/checkout", json={"item": "premium_yearly"}, headers=user)
    assert again.json()["session_id"] == first.json()["session_id"]

    stripe_api.expire_checkout(first.json()["session_id"])
    stripe_api.wait_delivered()
    order = await database.orders.find_one({"order_id": first.json()["order_id"]})
    assert order["status"] == "expired"
    fresh = await http.post("/v1/checkout", json={"item": "premium_yearly"}, headers=user)
    assert fresh.status_code == 201
    assert fresh.json()["session_id"] != first.json()["session_id"]
    assert stripe_api.objects[fresh.json()["session_id"]]["status"] == "open"


async def test_lifetime_is_not_sold_twice_nor_a_subscription_on_top(
    http: httpx.AsyncClient, stripe_api: StripeDouble
) -> None:
    user = as_user(f"user-{uuid.uuid4().hex[:8]}")
    r = await http.post("/v1/checkout", json={"item": "lifetime"}, headers=user)
    stripe_api.complete_checkout(r.json()["session_id"])
    stripe_api.wait_delivered()
    for item in ("lifetime", "premium_monthly"):
        refused = await http.post("/v1/checkout", json={"item": item}, headers=user)
        assert (refused.status_code, refused.json()["error"]) == (409, "already_lifetime")
        assert "lifetime" in refused.json()["detail"]
    credits = await http.post("/v1/checkout", json={"item": "credits_10"}, headers=user)
    assert credits.status_code == 201
