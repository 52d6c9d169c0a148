"""The library over HTTP: upload, edit, withdraw, search and read pieces."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import TypeAdapter, ValidationError
from sonata_kit import CurrentPrincipal, Forbidden, RuntimeDep, Unprocessable
from sonata_messaging import Transaction

from sonata_db.adapters.documents import PieceDoc
from sonata_db.adapters.scores import (
    Limits,
    ParsedScore,
    assign_hands,
    map_hands,
    parse_score,
    to_json,
)
from sonata_db.domain.errors import InvalidPieceError
from sonata_db.domain.library import BarRange
from sonata_db.entrypoints.cached import NOT_MODIFIED, Reads, cached_json
from sonata_db.entrypoints.deps import Settings, Teacher
from sonata_db.entrypoints.schemas import HandsIn, PieceChanges, PieceOut, PiecePage, SectionIn
from sonata_db.service_layer import pieces
from sonata_db.service_layer.access import is_admin, teachers_of

router = APIRouter(prefix="/v1", tags=["library"])
_SECTIONS = TypeAdapter(list[SectionIn])
_HANDS = TypeAdapter(HandsIn)
_PAGE = TypeAdapter(PiecePage)
_PIECE = TypeAdapter(PieceOut)
_SCORE = TypeAdapter(dict[str, Any])


def _hands(raw: str | None) -> HandsIn | None:
    if raw is None or not raw.strip():
        return None
    try:
        return _HANDS.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors()[:3])
        raise Unprocessable(
            'hands must be a JSON object {"tracks": {"<track>": "right" | "left", ...}} or '
            f'{{"channels": {{"<channel 1-16>": "right" | "left", ...}}}}: {problems}',
            code="invalid_hands",
        ) from exc


def _sections(raw: str | None) -> list[BarRange] | None:
    if raw is None or not raw.strip():
        return None
    try:
        given = _SECTIONS.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors()[:3])
        raise Unprocessable(
            f"sections must be a JSON list of {{name, first_bar, last_bar}}: {problems}",
            code="invalid_sections",
        ) from exc
    return [BarRange(s.name, s.first_bar, s.last_bar) for s in given]


async def _read_upload(file: UploadFile, limit: int) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise Unprocessable(f"the file is larger than {limit} bytes", code="file_too_large")
    return data


@router.post("/pieces", status_code=201, responses={422: {"description": "unreadable piece"}})
async def upload_piece(
    principal: Teacher,
    runtime: RuntimeDep,
    settings: Settings,
    reads: Reads,
    file: Annotated[UploadFile, File(description="MusicXML (.musicxml, .xml, .mxl) or MIDI")],
    title: Annotated[str | None, Form(max_length=200)] = None,
    composer: Annotated[str | None, Form(max_length=200)] = None,
    level: Annotated[int, Form(ge=1, le=10)] = 1,
    tags: Annotated[str, Form(max_length=600, description="comma-separated")] = "",
    key: Annotated[str, Form(max_length=40)] = "",
    visibility: Annotated[Literal["public", "private"], Form()] = "private",
    sections: Annotated[str | None, Form(max_length=20_000, description="JSON list")] = None,
    hands: Annotated[
        str | None,
        Form(
            max_length=4_000,
            description='MIDI only, JSON: {"tracks": {"2": "right", "3": "left"}} (tracks '
            'counted from 1 in file order, the tempo track included) or {"channels": {"1": '
            '"right", "2": "left"}} (channels 1-16); every track or channel with notes needs '
            "a hand",
        ),
    ] = None,
    hand_split: Annotated[int | None, Form(ge=0, le=127)] = None,
    swap_hands: Annotated[bool, Form()] = False,
) -> PieceOut:
    if visibility == "public" and not is_admin(principal):
        raise Forbidden("only an admin publishes to the public catalogue", code="not_admin")
    data = await _read_upload(file, settings.max_upload_bytes)
    limits = Limits(settings.max_upload_bytes, settings.max_score_notes, settings.max_score_bars)
    given_sections = _sections(sections)
    given_hands = _hands(hands)
    if given_hands is not None and hand_split is not None:
        raise Unprocessable(
            "give hands (by track or channel) or hand_split (by pitch), not both",
            code="invalid_hands",
        )
    try:
        parsed: ParsedScore = await to_thread.run_sync(parse_score, data, file.filename, limits)
        if given_hands is not None:
            by: Literal["tracks", "channels"] = "tracks" if given_hands.tracks else "channels"
            mapping = given_hands.tracks or given_hands.channels or {}
            await to_thread.run_sync(map_hands, parsed, data, by, mapping)
        if hand_split is not None or swap_hands:
            assign_hands(parsed, hand_split, swap_hands)
        piece = pieces.build_piece(
            pieces.new_piece_id(),
            parsed,
            pieces.PieceInput(
                title=title,
                composer=composer,
                level=level,
                tags=tags.split(","),
                key=key,
                visibility=visibility,
                sections=given_sections,
            ),
            principal.user_id,
        )
    except InvalidPieceError as exc:
        raise Unprocessable(str(exc), code="invalid_piece") from exc
    score = to_json(parsed.score)

    async def use_case(tx: Transaction) -> PieceDoc:
        reads.after_commit(tx, library=True)
        return await pieces.create_piece(tx, piece, score)

    return PieceOut.of(await runtime.transaction(use_case))


@router.get("/pieces", response_model=PiecePage, responses=NOT_MODIFIED)
async def list_pieces(
    request: Request,
    principal: CurrentPrincipal,
    reads: Reads,
    q: Annotated[str | None, Query(max_length=100, description="title, composer or tag")] = None,
    level: Annotated[int | None, Query(ge=1, le=10)] = None,
    min_level: Annotated[int | None, Query(ge=1, le=10)] = None,
    max_level: Annotated[int | None, Query(ge=1, le=10)] = None,
    composer: Annotated[str | None, Query(max_length=100)] = None,
    tag: Annotated[list[str] | None, Query(max_length=8)] = None,
    scope: Literal["all", "public", "mine"] = "all",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    query = pieces.PieceQuery(
        text=q or None,
        level=level,
        min_level=min_level,
        max_level=max_level,
        composer=composer or None,
        tags=tuple(tag or ()),
        scope=scope,
        page=page,
        page_size=page_size,
    )

    async def compute() -> PiecePage:
        items, total = await pieces.search_pieces(
            query, principal, await teachers_of(principal.user_id)
        )
        return PiecePage(
            items=[PieceOut.of(p) for p in items], total=total, page=page, page_size=page_size
        )

    return await cached_json(request, principal, reads, _PAGE, compute)


@router.get(
    "/pieces/{piece_id}",
    response_model=PieceOut,
    responses={404: {"description": "unknown or not yours"}, **NOT_MODIFIED},
)
async def get_piece(
    piece_id: str, request: Request, principal: CurrentPrincipal, reads: Reads
) -> Response:
    async def compute() -> PieceOut:
        return PieceOut.of(await pieces.load_piece(piece_id, principal))

    return await cached_json(request, principal, reads, _PIECE, compute)


@router.get(
    "/pieces/{piece_id}/score",
    response_model=dict[str, Any],
    responses={404: {"description": "unknown"}, **NOT_MODIFIED},
)
async def get_score(
    piece_id: str,
    request: Request,
    principal: CurrentPrincipal,
    reads: Reads,
    version: Annotated[int | None, Query(ge=1, le=pieces.MAX_VERSION)] = None,
) -> Response:
    """The score in the engine's JSON note shape."""

    async def compute() -> dict[str, Any]:
        piece = await pieces.load_piece(piece_id, principal)
        return await pieces.piece_score(piece, version)

    return await cached_json(request, principal, reads, _SCORE, compute)


@router.patch("/pieces/{piece_id}", responses={403: {}, 404: {}, 422: {}})
async def change_piece(
    piece_id: str, body: PieceChanges, principal: Teacher, runtime: RuntimeDep, reads: Reads
) -> PieceOut:
    changes = body.model_dump(exclude_unset=True)
    changes = {k: v for k, v in changes.items() if v is not None}

    async def use_case(tx: Transaction) -> PieceDoc:
        reads.after_commit(tx, library=True)
        return await pieces.update_piece(tx, piece_id, principal, changes)

    try:
        return PieceOut.of(await runtime.transaction(use_case))
    except InvalidPieceError as exc:
        raise Unprocessable(str(exc), code="invalid_piece") from exc


@router.delete("/pieces/{piece_id}", status_code=204, responses={403: {}, 404: {}})
async def withdraw_piece(
    piece_id: str, principal: Teacher, runtime: RuntimeDep, reads: Reads
) -> Response:
    async def use_case(tx: Transaction) -> None:
        reads.after_commit(tx, library=True)
        await pieces.withdraw_piece(tx, piece_id, principal, "withdrawn_by_owner")

    await runtime.transaction(use_case)
    return Response(status_code=204)
