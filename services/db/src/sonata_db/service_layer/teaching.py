"""Teachers and parents: invites, links to students or children, assignments."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sonata_contracts.ai_scoring import PerformanceScored
from sonata_contracts.db import AssignmentCompleted, AssignmentCreated
from sonata_kit import Conflict, Forbidden, NotFound, Principal, Unprocessable
from sonata_messaging import Transaction

from sonata_db.adapters.documents import Assignment, Invite, Link, PieceDoc
from sonata_db.domain.plan import PlanLimits
from sonata_db.service_layer.access import can_read_piece, require_guardian
from sonata_db.service_layer.entitlements import require_teacher_seat

RELATION_FOR_ROLE = {"teacher": "teacher", "parent": "parent"}


def _now() -> datetime:
    return datetime.now(UTC)


def relation_of(principal: Principal, wanted: str) -> str:
    if wanted not in RELATION_FOR_ROLE or wanted not in principal.roles:
        raise Forbidden(f"only a {wanted} can invite as a {wanted}", code="role_required")
    return RELATION_FOR_ROLE[wanted]


async def create_invite(
    tx: Transaction, principal: Principal, relation: str, ttl: timedelta
) -> Invite:
    invite = Invite(
        code=secrets.token_urlsafe(9),
        owner_id=principal.user_id,
        relation=relation,
        expires_at=_now() + ttl,
    )
    await invite.insert(session=tx.session)
    return invite


async def accept_invite(tx: Transaction, principal: Principal, code: str, free: PlanLimits) -> Link:
    invite = await Invite.find_one(Invite.code == code, session=tx.session)
    if invite is None or invite.used_by is not None or invite.expires_at < _now():
        raise NotFound("this invite code is unknown, used or expired", code="invite_not_found")
    if invite.owner_id == principal.user_id:
        raise Conflict("you cannot accept your own invite", code="own_invite")
    invite.used_by = principal.user_id
    await invite.save(session=tx.session)
    existing = await Link.find_one(
        Link.guardian_id == invite.owner_id,
        Link.student_id == principal.user_id,
        Link.relation == invite.relation,
        session=tx.session,
    )
    if existing is not None:
        return existing
    if invite.relation == "teacher":
        await require_teacher_seat(tx, invite.owner_id, _now(), free)
    link = Link(
        guardian_id=invite.owner_id,
        student_id=principal.user_id,
        relation=invite.relation,
        since=_now(),
    )
    await link.insert(session=tx.session)
    return link


@dataclass(frozen=True)
class NewAssignment:
    student_id: str
    piece_id: str
    first_bar: int | None
    last_bar: int | None
    hands: str
    tempo_percent: int
    target_score: float
    due_at: datetime | None


async def create_assignment(
    tx: Transaction, principal: Principal, data: NewAssignment
) -> Assignment:
    await require_guardian(principal, data.student_id, "teacher")
    piece = await PieceDoc.find_one(PieceDoc.piece_id == data.piece_id, session=tx.session)
    if piece is None or not await can_read_piece(piece, principal):
        raise NotFound("no such piece", code="piece_not_found")
    if (data.first_bar is None) != (data.last_bar is None):
        raise Unprocessable("give both first_bar and last_bar, or neither", code="bad_bars")
    if (
        data.first_bar is not None
        and data.last_bar is not None
        and (
            data.first_bar > data.last_bar
            or data.first_bar not in piece.bars
            or (data.last_bar not in piece.bars)
        )
    ):
        raise Unprocessable(
            f"bars {data.first_bar}-{data.last_bar} are not a range of the piece's bars "
            f"{piece.bars[0]}-{piece.bars[-1]}",
            code="bad_bars",
        )
    assignment = Assignment(
        assignment_id=uuid.uuid4().hex,
        teacher_id=principal.user_id,
        student_id=data.student_id,
        piece_id=data.piece_id,
        first_bar=data.first_bar,
        last_bar=data.last_bar,
        hands=data.hands,
        tempo_percent=data.tempo_percent,
        target_score=data.target_score,
        due_at=data.due_at,
        created_at=_now(),
    )
    await assignment.insert(session=tx.session)
    bars = (
        (data.first_bar, data.last_bar)
        if data.first_bar is not None and data.last_bar is not None
        else None
    )
    await tx.publish(
        AssignmentCreated(
            assignment_id=assignment.assignment_id,
            teacher_id=principal.user_id,
            student_id=data.student_id,
            piece_id=data.piece_id,
            bars=bars,
            hands="left" if data.hands == "left" else "right" if data.hands == "right" else "both",
            tempo_percent=data.tempo_percent,
            target_score=data.target_score,
            due_at=data.due_at,
        )
    )
    return assignment


def _covers(assignment: Assignment, options: dict[str, object]) -> bool:
    """Whether a take played what the assignment asks: its bars (or more), its hand (or both),
    at its tempo or faster."""
    hands = options.get("hands", "both")
    if assignment.hands != "both" and hands not in (assignment.hands, "both"):
        return False
    if assignment.hands == "both" and hands != "both":
        return False
    tempo = options.get("tempo_percent", 100)
    if isinstance(tempo, int | float) and tempo < assignment.tempo_percent:
        return False
    first, last = options.get("first_bar"), options.get("last_bar")
    if assignment.first_bar is not None and assignment.last_bar is not None:
        if isinstance(first, int) and first > assignment.first_bar:
            return False
        if isinstance(last, int) and last < assignment.last_bar:
            return False
    elif first is not None or last is not None:
        return False  # the whole piece was assigned, a part of it was played
    return True


async def complete_assignments(tx: Transaction, event: PerformanceScored) -> None:
    options = event.report.get("options")
    taken = options if isinstance(options, dict) else {}
    open_ones = await Assignment.find(
        Assignment.student_id == event.user_id,
        Assignment.piece_id == event.piece_id,
        Assignment.completed_at == None,  # noqa: E711  (a Beanie query, not a comparison)
        session=tx.session,
    ).to_list()
    for assignment in open_ones:
        if not _covers(assignment, taken):
            continue
        assignment.best_score = max(assignment.best_score or 0.0, event.overall_score)
        if event.overall_score >= assignment.target_score:
            assignment.completed_at = event.finished_at
            assignment.completed_by = event.performance_id
            await tx.publish(
                AssignmentCompleted(
                    assignment_id=assignment.assignment_id,
                    teacher_id=assignment.teacher_id,
                    student_id=assignment.student_id,
                    piece_id=assignment.piece_id,
                    performance_id=event.performance_id,
                    score=event.overall_score,
                )
            )
        await assignment.save(session=tx.session)


async def assignments_of_student(student_id: str) -> list[Assignment]:
    return await Assignment.find(Assignment.student_id == student_id).sort("-created_at").to_list()


async def assignments_by_teacher(teacher_id: str) -> list[Assignment]:
    return await Assignment.find(Assignment.teacher_id == teacher_id).sort("-created_at").to_list()


async def linked_students(guardian_id: str, relation: str) -> list[Link]:
    return await Link.find(Link.guardian_id == guardian_id, Link.relation == relation).to_list()
