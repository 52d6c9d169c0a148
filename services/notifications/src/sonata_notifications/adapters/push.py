"""Web push with pywebpush and VAPID, to every browser the user subscribed."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from pymongo.errors import DuplicateKeyError
from pywebpush import WebPushException, webpush

from sonata_notifications.adapters.documents import PushDelivery, PushSubscription
from sonata_notifications.domain.errors import PermanentSendError, TransientSendError
from sonata_notifications.service_layer.ports import Outgoing

GONE = (404, 410)  # the push service forgot the subscription: it never comes back
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def _base64url(value: str) -> bytes | None:
    if not isinstance(value, str) or not BASE64URL.match(value):
        return None
    bare = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (binascii.Error, ValueError):
        return None


def key_problem(p256dh: str, auth: str) -> str | None:
    """What is wrong with a browser's RFC 8291 keys, or None: p256dh must be an uncompressed
    P-256 point (65 bytes), auth a 16-byte secret, both base64url."""
    point = _base64url(p256dh)
    if point is None:
        return "p256dh is not base64url"
    if len(point) != 65 or point[0] != 0x04:
        return f"p256dh must be a 65-byte uncompressed P-256 point, not {len(point)} bytes"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return "p256dh is not a point on P-256"
    secret = _base64url(auth)
    if secret is None:
        return "auth is not base64url"
    if len(secret) != 16:
        return f"auth must be 16 bytes, not {len(secret)}"
    return None


class WebPushSender:
    def __init__(self, vapid_private_key: str, vapid_subject: str, timeout: float = 15.0) -> None:
        self.vapid_private_key = vapid_private_key
        self.vapid_subject = vapid_subject
        self.timeout = timeout

    def _post(self, subscription: dict[str, Any], payload: str, topic: str) -> int:
        response = webpush(
            subscription_info=subscription,
            data=payload,
            vapid_private_key=self.vapid_private_key,
            vapid_claims={"sub": self.vapid_subject},
            ttl=24 * 3600,
            # The Topic header makes the push service replace, not repeat, an undelivered
            # message with the same key.
            headers={"Topic": topic, "Urgency": "normal"},
            timeout=self.timeout,
        )
        return int(response.status_code)

    async def send(self, message: Outgoing) -> str:
        if message.user_id is None:
            raise PermanentSendError("push needs a user")
        rows = (
            await PushSubscription.get_pymongo_collection()
            .find({"user_id": message.user_id})
            .to_list()
        )
        if not rows:
            raise PermanentSendError("no push subscription")
        payload = json.dumps(
            {"title": message.rendered.subject, "body": message.rendered.text, "kind": message.kind}
        )
        topic = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
        taken = {
            d["endpoint"]
            async for d in PushDelivery.get_pymongo_collection().find(
                {"key": message.idempotency_key}, {"endpoint": 1}
            )
        }
        delivered, transient, refused = 0, [], []
        for row in rows:
            if row["endpoint"] in taken:  # an earlier attempt reached this browser
                delivered += 1
                continue
            problem = key_problem(row["p256dh"], row["auth"])
            if problem is not None:
                # keys that can encrypt nothing (stored before they were checked): this
                # subscription can never work, so it goes like a gone one
                await PushSubscription.get_pymongo_collection().delete_one({"_id": row["_id"]})
                refused.append(f"unusable subscription keys: {problem}")
                continue
            info = {
                "endpoint": row["endpoint"],
                "keys": {"p256dh": row["p256dh"], "auth": row["auth"]},
            }
            try:
                status = await asyncio.to_thread(self._post, info, payload, topic)
            except WebPushException as exc:
                code = exc.response.status_code if exc.response is not None else None
                if code in GONE:
                    await PushSubscription.get_pymongo_collection().delete_one({"_id": row["_id"]})
                    refused.append(f"{code} gone")
                    continue
                if code is None:  # refused by pywebpush itself, before any request
                    refused.append(str(exc))
                    continue
                if 400 <= code < 500 and code != 429:
                    refused.append(f"refused with {code}")
                    continue
                transient.append(str(exc))
                continue

            except (OSError, TimeoutError) as exc:
                transient.append(repr(exc))
                continue
            if 200 <= status < 300:
                delivered += 1
                await self._remember(message.idempotency_key, row["endpoint"])
        if transient:
            # retried for the browsers that failed; the ones reached are not sent it again
            reached = f"reached {delivered} of {len(rows)} browsers; " if delivered else ""
            raise TransientSendError((reached + "; ".join(transient))[:500])
        if delivered:
            return f"push:{delivered}/{len(rows)}"
        reasons = "; ".join(sorted(set(refused)))
        raise PermanentSendError(f"every push subscription was refused or is gone: {reasons}"[:500])

    @staticmethod
    async def _remember(key: str, endpoint: str) -> None:
        with suppress(DuplicateKeyError):  # a concurrent attempt recorded it first
            await PushDelivery.get_pymongo_collection().insert_one(
                {"key": key, "endpoint": endpoint, "at": datetime.now(UTC)}
            )
