"""What db consumes and publishes; the names the contract test checks."""

from __future__ import annotations

from sonata_contracts.ai_scoring import PerformanceScored
from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_contracts.payment import EntitlementsChanged
from sonata_messaging import HandlerSpec, Transaction, on

from sonata_db.service_layer.entitlements import apply_entitlement
from sonata_db.service_layer.practice import record_performance, remember_timezone
from sonata_db.service_layer.privacy import forget_user

DEFAULT_MASTERY_THRESHOLD = 80.0


def handlers(mastery_threshold: float = DEFAULT_MASTERY_THRESHOLD) -> list[HandlerSpec]:
    async def performance_scored(event: PerformanceScored, tx: Transaction) -> None:
        await record_performance(event, tx, mastery_threshold)

    return [
        on(UserDeleted, forget_user),
        on(UserRegistered, remember_timezone),
        on(PerformanceScored, performance_scored),
        on(EntitlementsChanged, apply_entitlement),
    ]


HANDLERS = handlers()
CONSUMES = frozenset(spec.name for spec in HANDLERS)
PUBLISHES = frozenset(
    {
        "db.piece_published.v1",
        "db.piece_withdrawn.v1",
        "db.performance_recorded.v1",
        "db.achievement_unlocked.v1",
        "db.streak_changed.v1",
        "db.mastery_reached.v1",
        "db.assignment_created.v1",
        "db.assignment_completed.v1",
    }
)
