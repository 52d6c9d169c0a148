"""The payment provider port over the official `stripe` client (async, httpx transport)."""

from __future__ import annotations

import logging
from typing import Any, Literal

import stripe
from sonata_kit import ServiceError

from sonata_payment.service_layer.ports import CheckoutLink

log = logging.getLogger(__name__)


class ProviderError(ServiceError):
    status = 502
    default_code = "payment_provider_error"


class StripeProvider:
    def __init__(
        self,
        api_key: str,
        *,
        api_base: str = "",
        success_url: str,
        cancel_url: str,
        portal_return_url: str,
    ) -> None:
        bases: Any = {"api": api_base} if api_base else None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses=bases,
            http_client=stripe.HTTPXClient(),
            max_network_retries=2,
        )
        self._success_url = success_url
        self._cancel_url = cancel_url
        self._portal_return_url = portal_return_url

    async def create_customer(
        self, *, user_id: str, email: str | None, name: str | None, idempotency_key: str
    ) -> str:
        params: Any = {"metadata": {"user_id": user_id}}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        customer = await self._call(
            self._client.v1.customers.create_async(params, {"idempotency_key": idempotency_key})
        )
        return str(customer.id)

    async def create_checkout(
        self,
        *,
        customer_id: str,
        price_id: str,
        mode: Literal["subscription", "payment"],
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> CheckoutLink:
        params: Any = {
            "mode": mode,
            "customer": customer_id,
            "line_items": [{"price": price_id, "quantity": 1}],
            "success_url": self._success_url,
            "cancel_url": self._cancel_url,
            "client_reference_id": metadata["user_id"],
            "metadata": metadata,
        }
        if mode == "subscription":
            params["subscription_data"] = {"metadata": metadata}
        session = await self._call(
            self._client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        )
        return CheckoutLink(session_id=str(session.id), url=str(session.url))

    async def portal_url(self, *, customer_id: str) -> str:
        params: Any = {"customer": customer_id, "return_url": self._portal_return_url}
        portal = await self._call(self._client.v1.billing_portal.sessions.create_async(params))
        return str(portal.url)

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        found = await self._call(self._client.v1.subscriptions.retrieve_async(subscription_id))
        state: dict[str, Any] = found.to_dict()
        return state

    async def set_cancel_at_period_end(
        self, *, subscription_id: str, cancel: bool, idempotency_key: str
    ) -> None:
        params: Any = {"cancel_at_period_end": cancel}
        await self._call(
            self._client.v1.subscriptions.update_async(
                subscription_id, params, {"idempotency_key": idempotency_key}
            )
        )

    async def cancel_now(self, *, subscription_id: str, idempotency_key: str) -> None:
        try:
            await self._client.v1.subscriptions.cancel_async(
                subscription_id, None, {"idempotency_key": idempotency_key}
            )
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_missing":
                raise ProviderError(exc.user_message or str(exc)) from exc

    async def delete_customer(self, *, customer_id: str) -> None:
        # DELETE is idempotent by definition at Stripe (no idempotency key); gone is done
        try:
            await self._client.v1.customers.delete_async(customer_id)
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_missing":
                raise ProviderError(exc.user_message or str(exc)) from exc

    @staticmethod
    async def _call(request: Any) -> Any:
        try:
            return await request
        except stripe.StripeError as exc:
            log.warning("payment provider refused: %s", exc)
            raise ProviderError(exc.user_message or "the payment provider refused") from exc
