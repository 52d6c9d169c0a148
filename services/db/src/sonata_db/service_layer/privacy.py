"""A user's data here: all of it exported on request, all of it erased when they leave."""

from __future__ import annotations

import json
import re
from typing import Any

from beanie import Document
from sonata_contracts.auth import UserDeleted
from sonata_contracts.db import PieceWithdrawn
from sonata_messaging import Transaction
from sonata_messaging.outbox import OUTBOX_COLLECTION

from sonata_db.adapters.documents import (
    Assignment,
    EntitlementDoc,
    Invite,
    LearnerProfile,
    Link,
    PerformanceRecord,
    PerformanceReport,
    PieceDoc,
    PieceVersion,
    StreakNotice,
    Unlock,
)

# Every collection holding a user's documents, and the fields that name the user.
USER_OWNED: tuple[tuple[type[Document], tuple[str, ...]], ...] = (
    (PerformanceRecord, ("user_id",)),
    (PerformanceReport, ("user_id",)),
    (LearnerProfile, ("user_id",)),
    (Unlock, ("user_id",)),
    (Invite, ("owner_id", "used_by")),
    (Link, ("guardian_id", "student_id")),
    (Assignment, ("teacher_id", "student_id")),
    (EntitlementDoc, ("user_id",)),
    (StreakNotice, ("user_id",)),
    (PieceVersion, ("owner_id",)),
)


def _mine(fields: tuple[str, ...], user_id: str) -> dict[str, Any]:
    return {"$or": [{f: user_id} for f in fields]}


async def forget_user(event: UserDeleted, tx: Transaction) -> None:
    """Every document naming the user goes, their pieces are withdrawn (the event no longer
    names them), and so do the events about them kept in the outbox: those already sent, and
    those not yet sent, which every consumer would now erase anyway."""
    for document, fields in USER_OWNED:
        await document.get_pymongo_collection().delete_many(
            _mine(fields, event.user_id), session=tx.session
        )
    named = re.escape(json.dumps(event.user_id, ensure_ascii=False))
    outbox = PieceDoc.get_pymongo_collection().database[OUTBOX_COLLECTION]
    await outbox.delete_many({"body": {"$regex": named}}, session=tx.session)
    owned = await PieceDoc.find(PieceDoc.owner_id == event.user_id, session=tx.session).to_list()
    for piece in owned:
        await PieceVersion.get_pymongo_collection().delete_many(
            {"piece_id": piece.piece_id}, session=tx.session
        )
        await piece.delete(session=tx.session)
        await tx.publish(
            PieceWithdrawn(
                piece_id=piece.piece_id,
                version=piece.version,
                owner_id=None,
                reason="owner_deleted",
            )
        )


async def export_user(user_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"user_id": user_id}
    for document, fields in USER_OWNED:
        cursor = document.get_pymongo_collection().find(_mine(fields, user_id), {"_id": 0})
        out[document.Settings.name] = [row async for row in cursor]
    cursor = PieceDoc.get_pymongo_collection().find({"owner_id": user_id}, {"_id": 0})
    out["pieces"] = [row async for row in cursor]
    return out
