"""Stripe's webhook signature scheme, checked with the official library, both ways in time."""

from __future__ import annotations

import json
import time
from typing import Any

import stripe
from sonata_kit import BadRequest

MAX_STAMP = 253_402_300_799  # the last second a datetime holds (9999-12-31)


def verify(payload: bytes, header: str | None, secret: str, tolerance_s: int) -> dict[str, Any]:
    """The event, if signed with ``secret`` within ``tolerance_s`` of now; else BadRequest.

    The library rejects stale timestamps only; a timestamp from the future is refused here
    too, so a captured signature cannot be pre-dated to stay valid longer.
    """
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), header, secret, tolerance=tolerance_s
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise BadRequest(str(exc).split(" Read it from")[0], code="invalid_signature") from exc
    stamps = [p[2:] for p in (header or "").split(",") if p.startswith("t=")]
    if int(stamps[0]) > time.time() + tolerance_s:
        raise BadRequest("Timestamp is in the future", code="invalid_signature")
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise BadRequest("the body is not JSON", code="invalid_payload") from exc
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and type(event.get("created")) is int
        and 0 <= event["created"] <= MAX_STAMP
        and isinstance((event.get("data") or {}).get("object"), dict)
    ):
        raise BadRequest("not a Stripe event", code="invalid_payload")
    return event
