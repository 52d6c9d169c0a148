"""db's projection of payment's entitlements, and the limits it puts on db's features."""

from __future__ import annotations

from datetime import datetime

from sonata_contracts.payment import EntitlementsChanged
from sonata_kit import Forbidden
from sonata_messaging import Transaction

from sonata_db.adapters.documents import EntitlementDoc, Link
from sonata_db.domain.plan import Entitlement, PlanLimits, effective_limits, seats_left


def _entitlement(doc: EntitlementDoc) -> Entitlement:
    return Entitlement(
        user_id=doc.user_id,
        plan=doc.plan,
        limits=PlanLimits(full_reports=doc.full_reports, teacher_seats=doc.teacher_seats),
        valid_until=doc.valid_until,
        version=doc.version,
        as_of=doc.as_of,
    )


async def _stored(user_id: str, tx: Transaction | None) -> EntitlementDoc | None:
    session = tx.session if tx is not None else None
    return await EntitlementDoc.find_one(EntitlementDoc.user_id == user_id, session=session)


async def apply_entitlement(event: EntitlementsChanged, tx: Transaction) -> None:
    """Keep the newest decision payment made, whatever order the events arrive in."""
    incoming = Entitlement(
        user_id=event.user_id,
        plan=event.plan,
        limits=PlanLimits(
            full_reports=event.limits.full_reports, teacher_seats=event.limits.teacher_seats
        ),
        valid_until=event.valid_until,
        version=event.version,
        as_of=event.as_of,
    )
    stored = await _stored(event.user_id, tx)
    if not incoming.supersedes(_entitlement(stored) if stored else None):
        return
    doc = stored or EntitlementDoc(
        user_id=event.user_id,
        plan=event.plan,
        full_reports=event.limits.full_reports,
        teacher_seats=event.limits.teacher_seats,
        version=event.version,
        as_of=event.as_of,
    )
    doc.plan = event.plan
    doc.full_reports = event.limits.full_reports
    doc.teacher_seats = event.limits.teacher_seats
    doc.valid_until = event.valid_until
    doc.version = event.version
    doc.as_of = event.as_of
    await doc.save(session=tx.session)


async def limits_of(
    user_id: str, now: datetime, free: PlanLimits, tx: Transaction | None = None
) -> PlanLimits:
    stored = await _stored(user_id, tx)
    return effective_limits(_entitlement(stored) if stored else None, now, free)


async def require_teacher_seat(
    tx: Transaction, teacher_id: str, now: datetime, free: PlanLimits
) -> None:
    """A teacher takes one more student only while their plan has a seat free."""
    limits = await limits_of(teacher_id, now, free, tx)
    students = await Link.find(
        Link.guardian_id == teacher_id, Link.relation == "teacher", session=tx.session
    ).count()
    if seats_left(limits, students) == 0:
        raise Forbidden(
            f"this teacher's plan has {limits.teacher_seats} student seat(s), all taken; "
            "a plan with more teacher seats (see the pricing) unlocks more students",
            code="teacher_seats_full",
        )
    # Two students taking the last seat at once both write this document: one transaction
    # hits a write conflict and is rerun, and then counts the other's link.
    await EntitlementDoc.get_pymongo_collection().update_one(
        {"user_id": teacher_id}, {"$inc": {"seats_claimed": 1}}, session=tx.session
    )
