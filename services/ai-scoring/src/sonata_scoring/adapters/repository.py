"""Entitlements projection and coach unlocks in MongoDB, mapped to and from the domain."""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from sonata_scoring.adapters.documents import CoachUnlockDoc, EntitlementDoc
from sonata_scoring.domain.entitlements import Entitlement, Limits


def _to_domain(doc: EntitlementDoc) -> Entitlement:
    return Entitlement(
        user_id=doc.user_id,
        plan=doc.plan,
        limits=Limits(
            scored_sessions_per_day=doc.scored_sessions_per_day,
            coach=doc.coach,
            full_reports=doc.full_reports,
            teacher_seats=doc.teacher_seats,
        ),
        valid_until=doc.valid_until,
        version=doc.version,
        as_of=doc.as_of,
    )


async def get_entitlement(
    user_id: str, session: AsyncClientSession | None = None
) -> Entitlement | None:
    doc = await EntitlementDoc.find_one(EntitlementDoc.user_id == user_id, session=session)
    return None if doc is None else _to_domain(doc)


async def save_entitlement(entitlement: Entitlement, session: AsyncClientSession) -> None:
    limits = entitlement.limits
    await EntitlementDoc.get_pymongo_collection().update_one(
        {"user_id": entitlement.user_id},
        {
            "$set": {
                "plan": entitlement.plan,
                "scored_sessions_per_day": limits.scored_sessions_per_day,
                "coach": limits.coach,
                "full_reports": limits.full_reports,
                "teacher_seats": limits.teacher_seats,
                "valid_until": entitlement.valid_until,
                "version": entitlement.version,
                "as_of": entitlement.as_of,
            }
        },
        upsert=True,
        session=session,
    )


async def save_coach_unlock(
    user_id: str,
    performance_id: str,
    entry_id: str,
    credits: int,
    at: datetime,
    session: AsyncClientSession,
) -> None:
    """The first spend on a performance is the one kept; another spend on it changes nothing."""
    await CoachUnlockDoc.get_pymongo_collection().update_one(
        {"user_id": user_id, "performance_id": performance_id},
        {"$setOnInsert": {"entry_id": entry_id, "credits": credits, "unlocked_at": at}},
        upsert=True,
        session=session,
    )


async def coach_unlocked(user_id: str, performance_id: str) -> bool:
    found = await CoachUnlockDoc.get_pymongo_collection().count_documents(
        {"user_id": user_id, "performance_id": performance_id}, limit=1
    )
    return found > 0
