"""payment's entitlements as db applies them: newest decision wins, teacher seats are counted,
full reports need a plan that has them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from db_store import Store, open_store
from sonata_contracts.payment import EntitlementsChanged, Limits
from sonata_db.adapters.documents import Invite, Link, PerformanceRecord, PerformanceReport
from sonata_db.domain.plan import PlanLimits
from sonata_db.service_layer.entitlements import apply_entitlement, limits_of
from sonata_db.service_layer.progress import performance_view
from sonata_db.service_layer.teaching import accept_invite
from sonata_kit import Forbidden, Principal
from sonata_messaging import Transaction

pytestmark = pytest.mark.integration

FREE = PlanLimits(full_reports=False, teacher_seats=0)
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[Store]:
    async for opened in open_store(mongo_url, "library_plans"):
        yield opened


def changed(
    user_id: str, plan: str, seats: int, version: int, as_of: datetime, full: bool = True
) -> EntitlementsChanged:
    limits = Limits(
        scored_sessions_per_day=None if plan != "free" else 3,
        coach=plan != "free",
        full_reports=full,
        teacher_seats=seats,
    )
    return EntitlementsChanged(
        user_id=user_id, plan=plan, limits=limits, valid_until=None, version=version, as_of=as_of
    )


async def apply(store: Store, event: EntitlementsChanged) -> None:
    async def run(tx: Transaction) -> None:
        await apply_entitlement(event, tx)

    await store.tx(run)


def person(user_id: str, *roles: str) -> Principal:
    return Principal(user_id, frozenset(roles or ("learner",)), None, None)


async def accept(store: Store, teacher: str, student: str) -> None:
    code = uuid.uuid4().hex
    await Invite(
        code=code, owner_id=teacher, relation="teacher", expires_at=T0 + timedelta(days=3650)
    ).insert()

    async def run(tx: Transaction) -> Link:
        return await accept_invite(tx, person(student), code, FREE)

    await store.tx(run)


async def test_a_late_older_event_does_not_undo_an_upgrade(store: Store) -> None:
    await apply(store, changed("t1", "teacher", 5, 2, T0 + timedelta(days=1)))
    await apply(store, changed("t1", "free", 0, 1, T0, full=False))  # arrives late
    await apply(store, changed("t1", "teacher", 5, 2, T0 + timedelta(days=1)))  # redelivered
    now = T0 + timedelta(days=2)
    assert await limits_of("t1", now, FREE) == PlanLimits(full_reports=True, teacher_seats=5)
    assert await limits_of("someone-else", now, FREE) == FREE


async def test_students_beyond_the_teachers_seats_are_refused_with_a_reason(store: Store) -> None:
    with pytest.raises(Forbidden) as refused:
        await accept(store, "t2", "s0")  # a free teacher has no seat
    assert refused.value.code == "teacher_seats_full"
    assert "unlocks more students" in str(refused.value)
    await apply(store, changed("t2", "teacher", 2, 1, T0))
    await accept(store, "t2", "s1")
    await accept(store, "t2", "s2")
    with pytest.raises(Forbidden):
        await accept(store, "t2", "s3")
    students = await Link.find(Link.guardian_id == "t2").to_list()
    assert sorted(link.student_id for link in students) == ["s1", "s2"]
    # A refused acceptance rolls back whole: both refused invites are still unused.
    unused = await Invite.find(Invite.owner_id == "t2", Invite.used_by == None).count()  # noqa: E711
    assert unused == 2


async def test_students_accepting_at_once_never_exceed_the_seats(store: Store) -> None:
    await apply(store, changed("t4", "teacher", 2, 1, T0))
    results = await asyncio.gather(
        *(accept(store, "t4", f"rush-{n}") for n in range(4)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, Forbidden)]
    assert len(refused) == 2, results
    assert await Link.find(Link.guardian_id == "t4").count() == 2


async def test_full_report_needs_full_reports(store: Store) -> None:
    await PerformanceRecord(
        performance_id="p1",
        session_id="s",
        user_id="u3",
        piece_id="piece",
        piece_version=1,
        started_at=T0,
        finished_at=T0 + timedelta(minutes=2),
        duration_s=120.0,
        overall_score=77.0,
        subscores={"pitch": 80.0},
    ).insert()
    await PerformanceReport(performance_id="p1", user_id="u3", report={"overall": 77.0}).insert()
    free = await performance_view("u3", "p1", T0, FREE)
    assert free["full_report"] is False
    assert free["report"] is None
    assert free["overall_score"] == 77.0
    assert free["subscores"] == {"pitch": 80.0}
    assert "premium" in free["reason"]
    await apply(store, changed("u3", "premium_monthly", 0, 1, T0))
    paid = await performance_view("u3", "p1", T0, FREE)
    assert paid["full_report"] is True
    assert paid["report"] == {"overall": 77.0}
