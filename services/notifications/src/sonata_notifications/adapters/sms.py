"""SMS through Twilio's official client; its base URL is configurable for local doubles."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from sonata_notifications.domain.errors import PermanentSendError, TransientSendError
from sonata_notifications.service_layer.ports import Outgoing

TWILIO_API = "https://api.twilio.com"
_idempotency_key: ContextVar[str | None] = ContextVar("twilio_idempotency_key", default=None)


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Rewrites Twilio's host to ``api_url`` and adds the idempotency key of the send."""

    def __init__(self, api_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.api_url = api_url.rstrip("/")

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API):
            url = self.api_url + url[len(TWILIO_API) :]
        key = _idempotency_key.get()
        if key is not None:
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "I-Twilio-Idempotency-Token": key}
        result: Response = await super().request(method, url, *args, **kwargs)
        return result


class TwilioSender:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        status_callback: str,
        *,
        api_url: str = TWILIO_API,
        timeout: float = 15.0,
    ) -> None:
        self.http = _HttpClient(api_url, timeout)
        self.client = Client(account_sid, auth_token, http_client=self.http)
        self.from_number = from_number
        self.status_callback = status_callback

    async def send(self, message: Outgoing) -> str:
        if not message.to:
            raise PermanentSendError("no phone number")
        token = _idempotency_key.set(message.idempotency_key)
        try:
            created = await self.client.messages.create_async(
                to=message.to,
                from_=self.from_number,
                body=message.rendered.text,
                status_callback=self.status_callback,
            )
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise TransientSendError(f"Twilio {exc.status}: {exc.msg}") from exc
            raise PermanentSendError(f"Twilio {exc.status} ({exc.code}): {exc.msg}") from exc
        except (TwilioException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TransientSendError(f"Twilio unreachable: {exc!r}") from exc
        finally:
            _idempotency_key.reset(token)
        return str(created.sid)

    async def close(self) -> None:
        await self.http.close()
