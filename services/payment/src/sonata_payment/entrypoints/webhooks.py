"""Stripe's webhook: verified, then handed to the inbox; thin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import Counter
from pydantic import BaseModel
from sonata_kit import BadRequest, RuntimeDep, ServiceError

from sonata_payment.adapters import stripe_webhooks
from sonata_payment.bootstrap import Deps, RuntimeTransactions
from sonata_payment.service_layer.webhooks import receive

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
MAX_BODY = 512 * 1024
WEBHOOKS = Counter(
    "sonata_payment_webhooks_total",
    "Stripe webhook deliveries by event type (`unverified` when the signature or body is "
    "refused) and outcome: handled, duplicate, rejected (4xx), failed (anything else).",
    ["type", "outcome"],
)


class ReceivedOut(BaseModel):
    received: bool
    outcome: str


@router.post("/stripe")
async def stripe_webhook(request: Request, runtime: RuntimeDep) -> ReceivedOut:
    """400 for an unsigned, forged, stale or future-dated request; 200 once stored and applied."""
    deps: Deps = request.app.state.deps
    payload = await request.body()
    if len(payload) > MAX_BODY:
        WEBHOOKS.labels("unverified", "rejected").inc()
        raise BadRequest("body too large", code="invalid_payload")
    try:
        event = stripe_webhooks.verify(
            payload,
            request.headers.get("stripe-signature"),
            deps.webhook_secret,
            deps.webhook_tolerance_s,
        )
    except BadRequest:
        WEBHOOKS.labels("unverified", "rejected").inc()
        raise
    kind = str(event["type"])
    try:
        outcome = await receive(
            RuntimeTransactions(runtime.client, runtime.outbox),
            event,
            deps.billing,
            deps.clock.now(),
        )
    except ServiceError as exc:
        WEBHOOKS.labels(kind, "rejected" if exc.status_code < 500 else "failed").inc()
        raise
    except Exception:
        WEBHOOKS.labels(kind, "failed").inc()
        raise
    WEBHOOKS.labels(kind, outcome).inc()
    return ReceivedOut(received=True, outcome=outcome)
