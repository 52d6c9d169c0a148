"""Stripe-Signature checking: the official scheme, a tolerance both ways, nothing else passes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from sonata_kit import BadRequest
from sonata_payment.adapters.stripe_webhooks import verify
from sonata_testing.stripe_double import sign

SECRET = "whsec_unit"
EVENT = {"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {"object": {"id": "in_1"}}}
BODY = json.dumps(EVENT)


def test_a_fresh_signature_yields_the_event() -> None:
    assert verify(BODY.encode(), sign(BODY, SECRET, int(time.time())), SECRET, 300) == EVENT


OTHER = BODY.replace("in_1", "in_2")
FAR = json.dumps({**EVENT, "created": 10**20})
TRUE = json.dumps({**EVENT, "created": True})


@pytest.mark.parametrize(
    ("body", "header"),
    [
        (BODY, lambda now: None),
        (BODY, lambda now: ""),
        (BODY, lambda now: sign(BODY, "whsec_other", now)),
        (BODY, lambda now: sign(BODY, SECRET, now - 301)),
        (BODY, lambda now: sign(BODY, SECRET, now + 301)),
        (OTHER, lambda now: sign(BODY, SECRET, now)),
        (BODY, lambda now: "t=now,v1=deadbeef"),
        (BODY, lambda now: f"t={now}"),
        (BODY, lambda now: sign(BODY, SECRET, now).replace("v1=", "v0=")),
        ("[]", lambda now: sign("[]", SECRET, now)),
        ('{"id": "evt_1"}', lambda now: sign('{"id": "evt_1"}', SECRET, now)),
        (FAR, lambda now: sign(FAR, SECRET, now)),
        (TRUE, lambda now: sign(TRUE, SECRET, now)),
    ],
    ids=[
        "no header", "empty header", "other secret", "stale", "future", "tampered",
        "garbage", "no signature", "other scheme", "not an event", "no data",
        "created beyond any date", "created not a number",
    ],
)  # fmt: skip
def test_forged_stale_future_or_malformed_requests_are_refused(
    body: str, header: Callable[[int], str | None]
) -> None:
    with pytest.raises(BadRequest) as refused:
        verify(body.encode(), header(int(time.time())), SECRET, 300)
    assert refused.value.code in ("invalid_signature", "invalid_payload")
