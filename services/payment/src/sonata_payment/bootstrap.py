"""The composition root: the real provider and the billing rules, from the settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from sonata_kit import Conflict
from sonata_messaging import Outbox, Transaction, run_in_transaction

from sonata_payment.adapters.stripe_provider import StripeProvider
from sonata_payment.service_layer.ports import Clock, PaymentProvider
from sonata_payment.service_layer.webhooks import Billing
from sonata_payment.settings import PaymentSettings

T = TypeVar("T")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    provider: PaymentProvider
    prices: dict[str, str]
    billing: Billing
    clock: Clock
    webhook_secret: str
    webhook_tolerance_s: int
    grace_sweep_interval_s: float


def build(settings: PaymentSettings) -> Deps:
    provider = StripeProvider(
        settings.stripe_api_key.get_secret_value(),
        api_base=settings.stripe_api_base,
        success_url=settings.checkout_success_url,
        cancel_url=settings.checkout_cancel_url,
        portal_return_url=settings.portal_return_url,
    )
    return Deps(
        provider=provider,
        prices=dict(settings.stripe_prices),
        billing=Billing(
            grace=timedelta(seconds=settings.grace_period_s),
            items_by_price={price: item for item, price in settings.stripe_prices.items()},
            provider=provider,
        ),
        clock=SystemClock(),
        webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
        webhook_tolerance_s=settings.stripe_webhook_tolerance_s,
        grace_sweep_interval_s=settings.grace_sweep_interval_s,
    )


class RuntimeTransactions:
    """Transactions on the service's client and outbox; contention is retried, then a 409."""

    def __init__(self, client: AsyncMongoClient[Any], outbox: Outbox, attempts: int = 25) -> None:
        self._client, self._outbox, self._attempts = client, outbox, attempts

    async def __call__(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        try:
            return await run_in_transaction(
                self._client, fn, outbox=self._outbox, max_attempts=self._attempts
            )
        except PyMongoError as exc:
            if exc.has_error_label("TransientTransactionError") or exc.has_error_label(
                "UnknownTransactionCommitResult"
            ):
                raise Conflict("too many concurrent changes; retry", code="busy") from exc
            raise
