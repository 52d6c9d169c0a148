"""What notifications consumes and publishes; the names the contract test checks."""

from datetime import UTC, datetime

from sonata_contracts import Event
from sonata_contracts.auth import UserDeleted
from sonata_contracts.notifications import NotificationFailed, NotificationSent
from sonata_messaging import HandlerSpec, Transaction, get_correlation_id, on

from sonata_notifications.adapters.repository import MongoStore
from sonata_notifications.service_layer.handlers import HANDLED, Policy, forget_user, on_event


def handlers(policy: Policy) -> list[HandlerSpec]:
    async def notify(event: Event, tx: Transaction) -> None:
        store = MongoStore(tx.session)
        await on_event(event, store, datetime.now(UTC), policy, get_correlation_id())

    async def erase(event: UserDeleted, tx: Transaction) -> None:
        await forget_user(event, MongoStore(tx.session))

    return [on(UserDeleted, erase), *(on(event_type, notify) for event_type in HANDLED)]


CONSUMES = frozenset({UserDeleted.NAME, *(event_type.NAME for event_type in HANDLED)})
PUBLISHES = frozenset({NotificationSent.NAME, NotificationFailed.NAME})
