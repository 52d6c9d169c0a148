"""What ai-scoring consumes and publishes; the names the contract test checks."""

from sonata_contracts.auth import UserDeleted
from sonata_contracts.db import AssignmentCreated, PiecePublished, PieceWithdrawn
from sonata_contracts.payment import CreditsChanged, EntitlementsChanged
from sonata_messaging import on

from sonata_scoring.service_layer.handlers import (
    apply_credits,
    apply_entitlements,
    forget_user,
    grant_assigned_piece,
    keep_piece,
    withdraw_piece,
)

HANDLERS = [
    on(UserDeleted, forget_user),
    on(EntitlementsChanged, apply_entitlements),
    on(CreditsChanged, apply_credits),
    on(PiecePublished, keep_piece),
    on(PieceWithdrawn, withdraw_piece),
    on(AssignmentCreated, grant_assigned_piece),
]
CONSUMES = frozenset(spec.name for spec in HANDLERS)
PUBLISHES = frozenset({"ai_scoring.session_started.v1", "ai_scoring.performance_scored.v1"})
