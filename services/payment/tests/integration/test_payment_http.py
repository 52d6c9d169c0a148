"""payment as a real process against the local Stripe API: pricing, checkout, webhooks, credits,
and what auth's events do to customers."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
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
