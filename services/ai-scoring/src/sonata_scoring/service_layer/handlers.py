"""Use cases fed by other services' events."""

from __future__ import annotations

import uuid

from sonata_contracts.auth import UserDeleted
from sonata_contracts.db import AssignmentCreated, PiecePublished, PieceWithdrawn
from sonata_contracts.payment import CreditsChanged, EntitlementsChanged
from sonata_messaging import Transaction

from sonata_scoring.adapters.documents import (
    CoachConversationDoc,
    CoachUnlockDoc,
    EntitlementDoc,
    LiveChunkDoc,
    LiveSessionDoc,
    LlmUsageDoc,
    PerformanceDoc,
    PieceCopy,
    PieceGrant,
)
from sonata_scoring.adapters.repository import (
    get_entitlement,
    save_coach_unlock,
    save_entitlement,
)
from sonata_scoring.domain.entitlements import Entitlement, Limits, coach_unlocked_by


async def apply_entitlements(event: EntitlementsChanged, tx: Transaction) -> None:
    incoming = Entitlement(
        user_id=event.user_id,
        plan=event.plan,
        limits=Limits(
            scored_sessions_per_day=event.limits.scored_sessions_per_day,
            coach=event.limits.coach,
            full_reports=event.limits.full_reports,
            teacher_seats=event.limits.teacher_seats,
        ),
        valid_until=event.valid_until,
        version=event.version,
        # MongoDB keeps milliseconds: compare at the precision the stored row has.
        as_of=event.as_of.replace(microsecond=event.as_of.microsecond // 1000 * 1000),
    )
    if incoming.supersedes(await get_entitlement(event.user_id, tx.session)):
        await save_entitlement(incoming, tx.session)


async def apply_credits(event: CreditsChanged, tx: Transaction) -> None:
    """A spend on `coach:<performance_id>` unlocks the coach's feedback on that performance
    for the spender; every other ledger entry (a refund too) leaves the unlocks as they are."""
    performance_id = coach_unlocked_by(event.reason, event.delta, event.reference)
    if performance_id is not None:
        await save_coach_unlock(
            event.user_id,
            performance_id,
            event.entry_id,
            -event.delta,
            event.occurred_at,
            tx.session,
        )


async def keep_piece(event: PiecePublished, tx: Transaction) -> None:
    pieces = PieceCopy.get_pymongo_collection()
    current = await pieces.find_one({"piece_id": event.piece_id}, session=tx.session)
    if current is not None and current["version"] > event.version:
        return  # an older version arriving late
    fields = event.model_dump(
        include={"piece_id", "version", "title", "composer", "level", "owner_id", "visibility"}
    )
    await pieces.update_one(
        {"piece_id": event.piece_id},
        {"$set": {**fields, "score": event.score, "withdrawn": False}},
        upsert=True,
        session=tx.session,
    )


async def withdraw_piece(event: PieceWithdrawn, tx: Transaction) -> None:
    await PieceCopy.get_pymongo_collection().update_one(
        {"piece_id": event.piece_id, "version": {"$lte": event.version}},
        {"$set": {"withdrawn": True}},
        session=tx.session,
    )


async def grant_assigned_piece(event: AssignmentCreated, tx: Transaction) -> None:
    """A student may play the (possibly private) piece their teacher assigned them; the grant
    does not wait for the piece's copy, which may arrive after it."""
    await PieceGrant.get_pymongo_collection().update_one(
        {"piece_id": event.piece_id, "user_id": event.student_id},
        {"$setOnInsert": {"assignment_id": event.assignment_id}},
        upsert=True,
        session=tx.session,
    )


async def forget_user(event: UserDeleted, tx: Transaction) -> None:
    """Everything of the user goes: plan, grants, private pieces, sessions with the notes they
    played, performances and reports, coach conversations and unlocks. Coach spending stays
    for the accounts, under a pseudonym."""
    mine = {"user_id": event.user_id}
    sessions = LiveSessionDoc.get_pymongo_collection()
    ids = [
        d["session_id"] async for d in sessions.find(mine, {"session_id": 1}, session=tx.session)
    ]
    if ids:
        await LiveChunkDoc.get_pymongo_collection().delete_many(
            {"session_id": {"$in": ids}}, session=tx.session
        )
    for document in (
        EntitlementDoc,
        PieceGrant,
        LiveSessionDoc,
        PerformanceDoc,
        CoachConversationDoc,
        CoachUnlockDoc,
    ):
        await document.get_pymongo_collection().delete_many(mine, session=tx.session)
    await PieceCopy.get_pymongo_collection().delete_many(
        {"owner_id": event.user_id}, session=tx.session
    )
    await LlmUsageDoc.get_pymongo_collection().update_many(
        mine, {"$set": {"user_id": f"erased:{uuid.uuid4().hex}"}}, session=tx.session
    )
