"""What the use cases need from the outside world."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from sonata_messaging import Transaction

T = TypeVar("T")


@dataclass(frozen=True)
class CheckoutLink:
    session_id: str
    url: str


class PaymentProvider(Protocol):
    """The payment provider's API (Stripe). Every write carries an idempotency key."""

    async def create_customer(
        self, *, user_id: str, email: str | None, name: str | None, idempotency_key: str
    ) -> str: ...

    async def create_checkout(
        self,
        *,
        customer_id: str,
        price_id: str,
        mode: Literal["subscription", "payment"],
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> CheckoutLink: ...

    async def portal_url(self, *, customer_id: str) -> str: ...

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The provider's current subscription object, as its webhooks carry it."""
        ...

    async def set_cancel_at_period_end(
        self, *, subscription_id: str, cancel: bool, idempotency_key: str
    ) -> None: ...

    async def cancel_now(self, *, subscription_id: str, idempotency_key: str) -> None: ...

    async def delete_customer(self, *, customer_id: str) -> None:
        """Delete the customer (and with it the email and name the provider holds); done
        already counts as done."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class Transactions(Protocol):
    """Runs a function in one MongoDB transaction with the outbox, retrying transient errors."""

    async def __call__(self, fn: Callable[[Transaction], Awaitable[T]]) -> T: ...
