"""The public API: pricing, the caller's billing state, checkout, portal, credits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field
from sonata_kit import CurrentPrincipal, RuntimeDep
from sonata_messaging import Transaction

from sonata_payment.adapters import repository as repo
from sonata_payment.bootstrap import Deps, RuntimeTransactions
from sonata_payment.domain.plans import CREDIT_PACKS, PLANS
from sonata_payment.service_layer import checkout
from sonata_payment.service_layer.credits import Movement, spend_credits
from sonata_payment.service_layer.entitlements import current_decision

router = APIRouter(prefix="/v1", tags=["billing"])


def get_deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


DepsDep = Annotated[Deps, Depends(get_deps)]
KeyHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)]


class LimitsOut(BaseModel):
    scored_sessions_per_day: int | None
    coach: bool
    full_reports: bool
    teacher_seats: int


class PlanOut(BaseModel):
    key: str
    name: str
    kind: str
    amount_cents: int
    currency: str
    interval: str | None
    limits: LimitsOut


class PackOut(BaseModel):
    key: str
    name: str
    credits: int
    amount_cents: int
    currency: str


class PricingOut(BaseModel):
    plans: list[PlanOut]
    credit_packs: list[PackOut]


@router.get("/plans")
async def pricing() -> PricingOut:
    """The public price list: plans with their limits, and credit packs."""
    return PricingOut(
        plans=[
            PlanOut(**{**vars(p), "limits": LimitsOut(**vars(p.limits))}) for p in PLANS.values()
        ],
        credit_packs=[PackOut(**vars(c)) for c in CREDIT_PACKS.values()],
    )


class SubscriptionOut(BaseModel):
    subscription_id: str
    plan: str
    status: str
    current_period_end: datetime
    cancel_at_period_end: bool


class MeOut(BaseModel):
    plan: str
    limits: LimitsOut
    valid_until: datetime | None
    subscriptions: list[SubscriptionOut]
    credits: int


@router.get("/billing/me")
async def my_billing(principal: CurrentPrincipal, deps: DepsDep) -> MeOut:
    user_id = principal.user_id
    decision = await current_decision(user_id, deps.clock.now(), deps.billing.grace)
    subs = await repo.subscriptions_of(user_id, None)
    return MeOut(
        plan=decision.plan,
        limits=LimitsOut(**vars(decision.limits)),
        valid_until=decision.valid_until,
        subscriptions=[
            SubscriptionOut(
                **{k: getattr(s, k) for k in SubscriptionOut.model_fields},
            )
            for s in sorted(subs, key=lambda s: s.current_period_end, reverse=True)
        ],
        credits=await repo.balance(user_id),
    )


class CheckoutIn(BaseModel):
    item: str = Field(max_length=64, description="a plan or credit pack key from /v1/plans")


class CheckoutOut(BaseModel):
    order_id: str
    session_id: str
    url: str


@router.post("/checkout", status_code=201)
async def start_checkout(
    body: CheckoutIn, principal: CurrentPrincipal, deps: DepsDep, key: KeyHeader = None
) -> CheckoutOut:
    """A hosted checkout page; retrying (same Idempotency-Key, or none) gives the same page."""
    order_id, link = await checkout.start_checkout(
        deps.provider, deps.prices, principal.user_id, body.item, key, deps.clock.now()
    )
    return CheckoutOut(order_id=order_id, session_id=link.session_id, url=link.url)


class UrlOut(BaseModel):
    url: str


@router.post("/billing-portal")
async def billing_portal(principal: CurrentPrincipal, deps: DepsDep) -> UrlOut:
    return UrlOut(url=await checkout.portal_url(deps.provider, principal.user_id))


class AcceptedOut(BaseModel):
    subscription_id: str
    cancel_at_period_end: bool


@router.post("/subscription/cancel", status_code=202)
async def cancel(principal: CurrentPrincipal, deps: DepsDep, key: KeyHeader = None) -> AcceptedOut:
    """Cancel at the end of the paid period; the new state arrives with the provider's event."""
    sub_id = await checkout.set_cancel_at_period_end(
        deps.provider, principal.user_id, True, key or deps.clock.now().isoformat()
    )
    return AcceptedOut(subscription_id=sub_id, cancel_at_period_end=True)


@router.post("/subscription/resume", status_code=202)
async def resume(principal: CurrentPrincipal, deps: DepsDep, key: KeyHeader = None) -> AcceptedOut:
    sub_id = await checkout.set_cancel_at_period_end(
        deps.provider, principal.user_id, False, key or deps.clock.now().isoformat()
    )
    return AcceptedOut(subscription_id=sub_id, cancel_at_period_end=False)


@router.get("/invoices")
async def invoices(principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """Invoices and receipts, newest first."""
    return [
        {
            "id": doc["invoice_id"],
            "kind": doc["kind"],
            "item": doc.get("item"),
            "amount_cents": doc["amount_cents"],
            "currency": doc["currency"],
            "paid": doc["paid"],
            "status": doc.get("status", "paid" if doc["paid"] else "open"),
            "refunded_cents": doc.get("refunded_cents", 0),
            "created": doc["created"],
            "url": doc.get("url"),
        }
        for doc in await repo.billing_history(principal.user_id)
        if doc["paid"] or doc.get("attempt_count")
    ]


class CreditsOut(BaseModel):
    balance: int
    entries: list[dict[str, Any]]


@router.get("/credits")
async def credits(principal: CurrentPrincipal) -> CreditsOut:
    return CreditsOut(
        balance=await repo.balance(principal.user_id),
        entries=[
            {k: e[k] for k in ("entry_id", "delta", "balance_after", "reason", "created_at")}
            for e in await repo.ledger(principal.user_id)
        ],
    )


class SpendIn(BaseModel):
    credits: int = Field(gt=0, le=1000)
    reference: str = Field(min_length=1, max_length=128, description="idempotency: one per use")


class SpendOut(BaseModel):
    entry_id: str
    balance: int
    replayed: bool


@router.post("/credits/spend")
async def spend(
    body: SpendIn, principal: CurrentPrincipal, runtime: RuntimeDep, deps: DepsDep
) -> SpendOut:
    """Spend credits (402 when too few); a repeated reference spends once."""
    now = deps.clock.now()

    async def use_case(tx: Transaction) -> Movement:
        return await spend_credits(tx, principal.user_id, body.credits, body.reference, now)

    moved = await RuntimeTransactions(runtime.client, runtime.outbox)(use_case)
    return SpendOut(entry_id=moved.entry_id, balance=moved.balance, replayed=moved.replayed)
