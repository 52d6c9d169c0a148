"""A learner's own record over HTTP: profile, history, reports, progress, export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from sonata_engine import EngineError
from sonata_kit import Conflict, CurrentPrincipal, NotFound, RuntimeDep, Unprocessable
from sonata_messaging import Transaction

from sonata_db.adapters.documents import LearnerProfile, PieceVersion, Unlock
from sonata_db.adapters.rendering import piano_roll
from sonata_db.adapters.scores import from_json, performance_midi, performed_notes
from sonata_db.domain.errors import UnrenderableReportError
from sonata_db.domain.progress import known_timezone
from sonata_db.entrypoints.cached import NOT_MODIFIED, Reads, cached_json
from sonata_db.entrypoints.deps import Settings
from sonata_db.entrypoints.schemas import (
    AssignmentOut,
    PerformancePage,
    ProfileIn,
    ProfileOut,
)
from sonata_db.service_layer import progress
from sonata_db.service_layer.practice import ACHIEVEMENTS, profile_of
from sonata_db.service_layer.privacy import export_user
from sonata_db.service_layer.teaching import assignments_of_student

router = APIRouter(prefix="/v1/me", tags=["practice"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "not found or not yours"},
    **NOT_MODIFIED,
}
_OBJECT = TypeAdapter(dict[str, Any])
_PAGE = TypeAdapter(PerformancePage)
_ASSIGNMENTS = TypeAdapter(list[AssignmentOut])


@router.get("/profile")
async def get_profile(principal: CurrentPrincipal) -> ProfileOut:
    profile = await profile_of(principal.user_id)
    return ProfileOut(**profile.model_dump(include=set(ProfileOut.model_fields)))


@router.put("/profile", responses={422: {"description": "unknown timezone"}})
async def put_profile(
    body: ProfileIn, principal: CurrentPrincipal, runtime: RuntimeDep, reads: Reads
) -> ProfileOut:
    if not known_timezone(body.timezone):
        raise Unprocessable(
            f"unknown timezone {body.timezone!r}: use an IANA name such as Europe/Paris",
            code="unknown_timezone",
        )

    async def use_case(tx: Transaction) -> LearnerProfile:
        reads.after_commit(tx, users=[principal.user_id])
        profile = await LearnerProfile.find_one(
            LearnerProfile.user_id == principal.user_id, session=tx.session
        ) or LearnerProfile(user_id=principal.user_id)
        profile.timezone = body.timezone
        profile.weekly_goal_minutes = body.weekly_goal_minutes
        profile.rest_days_per_week = body.rest_days_per_week
        await profile.save(session=tx.session)
        return profile

    saved = await runtime.transaction(use_case)
    return ProfileOut(**saved.model_dump(include=set(ProfileOut.model_fields)))


@router.get("/performances", response_model=PerformancePage, responses=NOT_MODIFIED)
async def list_performances(
    request: Request,
    principal: CurrentPrincipal,
    reads: Reads,
    piece_id: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    async def compute() -> PerformancePage:
        items, total = await progress.history(principal.user_id, piece_id, page, page_size)
        return PerformancePage(items=items, total=total, page=page, page_size=page_size)

    return await cached_json(request, principal, reads, _PAGE, compute)


@router.get("/performances/{performance_id}", response_model=dict[str, Any], responses=_NOT_FOUND)
async def get_performance(
    performance_id: str,
    request: Request,
    principal: CurrentPrincipal,
    settings: Settings,
    reads: Reads,
) -> Response:
    """The full report needs a plan with full reports; otherwise the summary and the reason."""

    async def compute() -> dict[str, Any]:
        return await progress.performance_view(
            principal.user_id, performance_id, datetime.now(UTC), settings.free_limits()
        )

    return await cached_json(request, principal, reads, _OBJECT, compute)


def _draw(stored_score: dict[str, Any], report: dict[str, Any]) -> str:
    try:
        score = from_json(stored_score)
    except EngineError as exc:
        raise UnrenderableReportError("the stored score cannot be read back") from exc
    return piano_roll(score, report)


@router.get(
    "/performances/{performance_id}/roll.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}},
        409: {"description": "the stored report cannot be drawn"},
        **_NOT_FOUND,
    },
)
async def get_piano_roll(performance_id: str, principal: CurrentPrincipal) -> Response:
    """Rows of the stored report that do not fit are left out; with none left, a 409."""
    record, report = await progress.performance_of(principal.user_id, performance_id)
    stored = await PieceVersion.find_one(
        PieceVersion.piece_id == record.piece_id, PieceVersion.version == record.piece_version
    )
    if stored is None or not stored.score:
        raise NotFound("the score this performance was played from is gone", code="score_gone")
    try:
        svg = await to_thread.run_sync(_draw, stored.score, report)
    except UnrenderableReportError as exc:
        raise Conflict(
            f"this performance's report cannot be rendered: {exc}", code="report_unrenderable"
        ) from exc
    return Response(svg, media_type="image/svg+xml")


@router.get(
    "/performances/{performance_id}/performance.mid",
    response_class=Response,
    responses={200: {"content": {"audio/midi": {}}}, **_NOT_FOUND},
)
async def get_performance_midi(performance_id: str, principal: CurrentPrincipal) -> Response:
    _, report = await progress.performance_of(principal.user_id, performance_id)
    data = performance_midi(performed_notes(report))
    return Response(
        data,
        media_type="audio/midi",
        headers={"Content-Disposition": f'attachment; filename="{performance_id}.mid"'},
    )


@router.get("/progress", response_model=dict[str, Any], responses=NOT_MODIFIED)
async def get_progress(
    request: Request, principal: CurrentPrincipal, settings: Settings, reads: Reads
) -> Response:
    async def compute() -> dict[str, Any]:
        return await _overview(principal.user_id, settings.mastery_threshold)

    return await cached_json(request, principal, reads, _OBJECT, compute)


async def _overview(user_id: str, threshold: float) -> dict[str, Any]:
    view = await progress.overview(user_id, threshold)
    rec = view.recommendation
    return {
        "pieces": view.pieces,
        "streak_days": view.streak_days,
        "today": view.today.isoformat(),
        "timezone": view.timezone,
        "week_minutes": view.week_minutes,
        "weekly_goal_minutes": view.weekly_goal_minutes,
        "weekly_goal_met": view.week_minutes >= view.weekly_goal_minutes,
        "recommendation": None
        if rec is None
        else {"piece_id": rec.piece_id, "section": rec.section, "reason": rec.reason},
    }


@router.get("/progress/{piece_id}", response_model=dict[str, Any], responses=_NOT_FOUND)
async def get_piece_progress(
    piece_id: str, request: Request, principal: CurrentPrincipal, settings: Settings, reads: Reads
) -> Response:
    async def compute() -> dict[str, Any]:
        rows = await progress.summaries(principal.user_id, piece_id)
        if not rows:
            raise NotFound("no performance of this piece yet", code="not_practised")
        return {
            **progress.piece_progress(rows, piece_id, settings.mastery_threshold),
            "heatmap": progress.heatmap(rows, piece_id),
        }

    return await cached_json(request, principal, reads, _OBJECT, compute)


@router.get("/skill-path")
async def get_skill_path(principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """The catalogue's graded path: a piece opens once the one before it is mastered."""
    mastered = {
        u.key
        for u in await Unlock.find(
            Unlock.user_id == principal.user_id, Unlock.kind == "mastery"
        ).to_list()
    }
    path = await progress.path_pieces()
    out, previous_mastered = [], True
    for piece in path:
        out.append(
            {
                "piece_id": piece.piece_id,
                "title": piece.title,
                "level": piece.level,
                "unlocked": previous_mastered,
                "mastered": piece.piece_id in mastered,
            }
        )
        previous_mastered = piece.piece_id in mastered
    return out


@router.get("/achievements")
async def get_achievements(principal: CurrentPrincipal) -> list[dict[str, Any]]:
    unlocks = await Unlock.find(
        Unlock.user_id == principal.user_id, Unlock.kind == "achievement"
    ).to_list()
    return [
        {"achievement": u.key, "title": ACHIEVEMENTS.get(u.key, u.key), "at": u.at} for u in unlocks
    ]


@router.get("/assignments", response_model=list[AssignmentOut], responses=NOT_MODIFIED)
async def my_assignments(request: Request, principal: CurrentPrincipal, reads: Reads) -> Response:
    async def compute() -> list[AssignmentOut]:
        return [AssignmentOut.of(a) for a in await assignments_of_student(principal.user_id)]

    return await cached_json(request, principal, reads, _ASSIGNMENTS, compute)


@router.get("/export")
async def export(principal: CurrentPrincipal) -> Response:
    """Everything this service holds about the caller, as one JSON document."""
    data = await export_user(principal.user_id)
    data["exported_at"] = datetime.now(UTC)
    return JSONResponse(
        jsonable_encoder(data),
        headers={"Content-Disposition": 'attachment; filename="sonata-library-export.json"'},
    )
