"""Teachers and parents over HTTP: invites, assignments, a student's results, a child's view."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from sonata_kit import CurrentPrincipal, Principal, RuntimeDep
from sonata_messaging import Transaction

from sonata_db.adapters.documents import Assignment, Invite, Link
from sonata_db.entrypoints.cached import Reads
from sonata_db.entrypoints.deps import Parent, Settings, TeacherOnly
from sonata_db.entrypoints.schemas import (
    AssignmentIn,
    AssignmentOut,
    InviteIn,
    InviteOut,
    LinkOut,
)
from sonata_db.service_layer import progress, teaching
from sonata_db.service_layer.access import require_guardian

router = APIRouter(prefix="/v1", tags=["teaching"])
_NOT_LINKED: dict[int | str, dict[str, Any]] = {404: {"description": "not linked to you"}}


@router.post("/invites", status_code=201, responses={403: {"description": "wrong role"}})
async def create_invite(
    body: InviteIn, principal: CurrentPrincipal, runtime: RuntimeDep, settings: Settings
) -> InviteOut:
    """A code (and link) a student or child accepts to let the caller see their progress."""
    relation = teaching.relation_of(principal, body.relation)
    ttl = timedelta(hours=settings.invite_ttl_hours)

    async def use_case(tx: Transaction) -> Invite:
        return await teaching.create_invite(tx, principal, relation, ttl)

    invite = await runtime.transaction(use_case)
    return InviteOut(
        code=invite.code,
        link=settings.invite_url.replace("{code}", invite.code),
        relation=invite.relation,
        expires_at=invite.expires_at,
    )


@router.post("/invites/{code}/accept", responses={403: {}, 404: {}, 409: {}})
async def accept_invite(
    code: str, principal: CurrentPrincipal, runtime: RuntimeDep, settings: Settings, reads: Reads
) -> LinkOut:
    """Link the caller to the inviter; a teacher whose plan's seats are all taken gets a 403."""
    free = settings.free_limits()

    async def use_case(tx: Transaction) -> Link:
        reads.after_commit(tx, library=True)  # a link opens the teacher's private pieces
        return await teaching.accept_invite(tx, principal, code, free)

    link = await runtime.transaction(use_case)
    return LinkOut(**link.model_dump(include=set(LinkOut.model_fields)))


@router.post("/assignments", status_code=201, responses={403: {}, 404: {}, 422: {}})
async def create_assignment(
    body: AssignmentIn, principal: TeacherOnly, runtime: RuntimeDep, reads: Reads
) -> AssignmentOut:
    data = teaching.NewAssignment(**body.model_dump())

    async def use_case(tx: Transaction) -> Assignment:
        reads.after_commit(tx, users=[data.student_id, principal.user_id])
        return await teaching.create_assignment(tx, principal, data)

    return AssignmentOut.of(await runtime.transaction(use_case))


@router.get("/assignments")
async def assignments_i_set(principal: TeacherOnly) -> list[AssignmentOut]:
    return [AssignmentOut.of(a) for a in await teaching.assignments_by_teacher(principal.user_id)]


async def _student_view(student_id: str, threshold: float) -> dict[str, Any]:
    rows = await progress.summaries(student_id)
    pieces = sorted({r["piece_id"] for r in rows})
    view = await progress.overview(student_id, threshold)
    return {
        "student_id": student_id,
        "streak_days": view.streak_days,
        "week_minutes": view.week_minutes,
        "weekly_goal_minutes": view.weekly_goal_minutes,
        "practice_minutes": round(sum(float(r["duration_s"]) for r in rows) / 60.0, 1),
        "pieces": [
            {**progress.piece_progress(rows, p, threshold), "heatmap": progress.heatmap(rows, p)}
            for p in pieces
        ],
        "assignments": [
            AssignmentOut.of(a).model_dump(mode="json")
            for a in await teaching.assignments_of_student(student_id)
        ],
    }


async def _linked(principal: Principal, relation: str) -> list[dict[str, Any]]:
    links = await teaching.linked_students(principal.user_id, relation)
    return [LinkOut(**k.model_dump(include=set(LinkOut.model_fields))).model_dump() for k in links]


@router.get("/students")
async def my_students(principal: TeacherOnly) -> list[dict[str, Any]]:
    return await _linked(principal, "teacher")


@router.get("/students/{student_id}/results", responses=_NOT_LINKED)
async def student_results(
    student_id: str, principal: TeacherOnly, settings: Settings
) -> dict[str, Any]:
    """Per piece: best, last, trend, per-bar heatmap and practice time; the assignments set."""
    await require_guardian(principal, student_id, "teacher")
    view = await _student_view(student_id, settings.mastery_threshold)
    view["assignments"] = [a for a in view["assignments"] if a["teacher_id"] == principal.user_id]
    return view


@router.get("/children")
async def my_children(principal: Parent) -> list[dict[str, Any]]:
    return await _linked(principal, "parent")


@router.get("/children/{child_id}", responses=_NOT_LINKED)
async def child_overview(child_id: str, principal: Parent, settings: Settings) -> dict[str, Any]:
    """A child's assignments and progress, read-only."""
    await require_guardian(principal, child_id, "parent")
    return await _student_view(child_id, settings.mastery_threshold)
