"""What payment consumes and publishes; the names the contract test checks."""

from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_messaging import HandlerSpec, Transaction, on

from sonata_payment.service_layer.handlers import forget_user, open_customer
from sonata_payment.service_layer.ports import Clock, PaymentProvider


def handlers(provider: PaymentProvider, clock: Clock) -> list[HandlerSpec]:
    async def erase(event: UserDeleted, tx: Transaction) -> None:
        await forget_user(event, tx, provider, clock.now())

    async def register(event: UserRegistered, tx: Transaction) -> None:
        await open_customer(event, tx, clock.now())

    return [on(UserDeleted, erase), on(UserRegistered, register)]


CONSUMES = frozenset({UserDeleted.NAME, UserRegistered.NAME})
PUBLISHES = frozenset(
    {
        "payment.entitlements_changed.v1",
        "payment.payment_succeeded.v1",
        "payment.payment_failed.v1",
        "payment.credits_changed.v1",
        "payment.subscription_changed.v1",
    }
)
