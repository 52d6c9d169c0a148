"""Web push with pywebpush and VAPID, to every browser the user subscribed."""

from __future__ import annotations

import asyncio
import hashlib
import json
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError
from pywebpush import WebPushException, webpush

from sonata_notifications.adapters.documents import PushDelivery, PushSubscription
from sonata_notifications.domain.errors import PermanentSendError, TransientSendError
from sonata_notifications.service_layer.ports import Outgoing

GONE = (404, 410)  # the push service forgot the subscription: it never comes back


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
        delivered, transient = 0, []
        for row in rows:
            if row["endpoint"] in taken:  # an earlier attempt reached this browser
                delivered += 1
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
                    continue
                if code is not None and 400 <= code < 500 and code != 429:
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
        raise PermanentSendError("every push subscription was refused or is gone")

    @staticmethod
    async def _remember(key: str, endpoint: str) -> None:
        with suppress(DuplicateKeyError):  # a concurrent attempt recorded it first
            await PushDelivery.get_pymongo_collection().insert_one(
                {"key": key, "endpoint": endpoint, "at": datetime.now(UTC)}
            )
