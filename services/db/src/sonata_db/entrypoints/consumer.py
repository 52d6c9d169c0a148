"""What db consumes and publishes; the names the contract test checks."""

from __future__ import annotations

from sonata_contracts.ai_scoring import PerformanceScored
from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_contracts.payment import EntitlementsChanged
from sonata_messaging import HandlerSpec, Transaction, on

from sonata_db.adapters.read_cache import ReadCache
from sonata_db.service_layer.entitlements import apply_entitlement
from sonata_db.service_layer.practice import record_performance, remember_timezone
from sonata_db.service_layer.privacy import forget_user

DEFAULT_MASTERY_THRESHOLD = 80.0


def handlers(
    mastery_threshold: float = DEFAULT_MASTERY_THRESHOLD, reads: ReadCache | None = None
) -> list[HandlerSpec]:
    """Each handler also tells ``reads`` (the process's read cache) what it changed."""

    def changed(tx: Transaction, user_id: str, library: bool = False) -> None:
        if reads is not None:
            reads.after_commit(tx, users=[user_id], library=library)

    async def performance_scored(event: PerformanceScored, tx: Transaction) -> None:
        changed(tx, event.user_id)
        await record_performance(event, tx, mastery_threshold)

    async def user_deleted(event: UserDeleted, tx: Transaction) -> None:
        changed(tx, event.user_id, library=True)  # their pieces and links go too
        await forget_user(event, tx)

    async def user_registered(event: UserRegistered, tx: Transaction) -> None:
        changed(tx, event.user_id)
        await remember_timezone(event, tx)

    async def entitlements_changed(event: EntitlementsChanged, tx: Transaction) -> None:
        changed(tx, event.user_id)
        await apply_entitlement(event, tx)

    return [
        on(UserDeleted, user_deleted),
        on(UserRegistered, user_registered),
        on(PerformanceScored, performance_scored),
        on(EntitlementsChanged, entitlements_changed),
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
