"""Library use cases: upload, edit, withdraw, list and read pieces, and the starting catalogue."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from sonata_contracts.db import PiecePublished, PieceWithdrawn
from sonata_kit import Conflict, Forbidden, NotFound, Principal
from sonata_messaging import Transaction

from sonata_db.adapters.documents import PieceDoc, PieceVersion, SectionDoc
from sonata_db.adapters.scores import Limits, ParsedScore, parse_score, to_json
from sonata_db.domain.errors import InvalidPieceError
from sonata_db.domain.library import BarRange, check_sections, normalise_tags
from sonata_db.service_layer.access import can_read_piece, is_admin

CATALOGUE_OWNER = None
# Versions a piece may reach; far above any real history, well inside MongoDB's integers.
MAX_VERSION = 1_000_000


@dataclass
class PieceInput:
    title: str | None = None
    composer: str | None = None
    level: int = 1
    tags: list[str] = field(default_factory=list)
    key: str = ""
    visibility: str = "private"
    sections: list[BarRange] | None = None
    skill_path: str | None = None
    path_order: int | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _published(piece: PieceDoc, score: dict[str, Any]) -> PiecePublished:
    return PiecePublished(
        piece_id=piece.piece_id,
        version=piece.version,
        title=piece.title,
        composer=piece.composer,
        level=piece.level,
        owner_id=piece.owner_id,
        visibility="public" if piece.visibility == "public" else "private",
        score=score,
    )


def build_piece(
    piece_id: str, parsed: ParsedScore, data: PieceInput, owner_id: str | None
) -> PieceDoc:
    sections = parsed.sections if data.sections is None else data.sections
    sections = check_sections(sections, parsed.bars)
    now = _now()
    return PieceDoc(
        piece_id=piece_id,
        version=1,
        owner_id=owner_id,
        visibility=data.visibility,
        title=(data.title or parsed.title or "Untitled").strip()[:200],
        composer=(data.composer or parsed.composer or "Unknown").strip()[:200],
        level=data.level,
        tags=normalise_tags(data.tags),
        key=data.key.strip()[:40],
        time_signature=parsed.time_signature,
        duration_s=parsed.duration_s,
        bars=parsed.bars,
        sections=[
            SectionDoc(name=s.name, first_bar=s.first_bar, last_bar=s.last_bar) for s in sections
        ],
        hands=parsed.hands,
        source_format=parsed.source_format,
        skill_path=data.skill_path,
        path_order=data.path_order,
        created_at=now,
        updated_at=now,
    )


async def create_piece(tx: Transaction, piece: PieceDoc, score: dict[str, Any]) -> PieceDoc:
    await piece.insert(session=tx.session)
    await _keep_version(tx, piece, score)
    await tx.publish(_published(piece, score))
    return piece


async def _keep_version(tx: Transaction, piece: PieceDoc, score: dict[str, Any]) -> None:
    await PieceVersion(
        piece_id=piece.piece_id, version=piece.version, owner_id=piece.owner_id, score=score
    ).insert(session=tx.session)


def new_piece_id() -> str:
    return uuid.uuid4().hex


async def load_piece(piece_id: str, principal: Principal) -> PieceDoc:
    piece = await PieceDoc.find_one(PieceDoc.piece_id == piece_id)
    if piece is None or not await can_read_piece(piece, principal):
        raise NotFound("no such piece", code="piece_not_found")
    return piece


async def piece_score(piece: PieceDoc, version: int | None = None) -> dict[str, Any]:
    stored = await PieceVersion.find_one(
        PieceVersion.piece_id == piece.piece_id,
        PieceVersion.version == (version or piece.version),
    )
    if stored is None:
        raise NotFound("no such version of this piece", code="version_not_found")
    return stored.score


def _check_owner(piece: PieceDoc, principal: Principal) -> None:
    if is_admin(principal):
        return
    if piece.owner_id is None or piece.owner_id != principal.user_id:
        raise Forbidden("only the piece's owner may change it", code="not_owner")


async def update_piece(
    tx: Transaction, piece_id: str, principal: Principal, changes: dict[str, Any]
) -> PieceDoc:
    piece = await PieceDoc.find_one(PieceDoc.piece_id == piece_id, session=tx.session)
    if piece is None or not await can_read_piece(piece, principal):
        raise NotFound("no such piece", code="piece_not_found")
    _check_owner(piece, principal)
    if "tags" in changes:
        changes["tags"] = normalise_tags(changes["tags"])
    if "sections" in changes:
        ranges = [BarRange(**s) for s in changes["sections"]]
        changes["sections"] = [
            SectionDoc(name=s.name, first_bar=s.first_bar, last_bar=s.last_bar)
            for s in check_sections(ranges, piece.bars)
        ]
    for name, value in changes.items():
        setattr(piece, name, value)
    if piece.version >= MAX_VERSION:
        raise Conflict(f"a piece has at most {MAX_VERSION} versions", code="too_many_versions")
    piece.version += 1
    piece.updated_at = _now()
    previous = await PieceVersion.find_one(
        PieceVersion.piece_id == piece_id,
        PieceVersion.version == piece.version - 1,
        session=tx.session,
    )
    score = previous.score if previous is not None else {}
    await piece.save(session=tx.session)
    await _keep_version(tx, piece, score)
    await tx.publish(_published(piece, score))
    return piece


async def withdraw_piece(
    tx: Transaction, piece_id: str, principal: Principal | None, reason: str
) -> None:
    piece = await PieceDoc.find_one(PieceDoc.piece_id == piece_id, session=tx.session)
    if piece is None or (principal is not None and not await can_read_piece(piece, principal)):
        raise NotFound("no such piece", code="piece_not_found")
    if principal is not None:
        _check_owner(piece, principal)
    await piece.delete(session=tx.session)
    await tx.publish(
        PieceWithdrawn(
            piece_id=piece_id, version=piece.version, owner_id=piece.owner_id, reason=reason
        )
    )


@dataclass(frozen=True)
class PieceQuery:
    text: str | None = None
    level: int | None = None
    min_level: int | None = None
    max_level: int | None = None
    composer: str | None = None
    tags: tuple[str, ...] = ()
    scope: str = "all"  # all | public | mine
    page: int = 1
    page_size: int = 20


async def search_pieces(
    query: PieceQuery, principal: Principal, teachers: list[str]
) -> tuple[list[PieceDoc], int]:
    """Public pieces, the caller's own, and private pieces of the caller's teachers."""
    visible: list[dict[str, Any]] = []
    if query.scope in ("all", "public"):
        visible.append({"visibility": "public"})
    if query.scope in ("all", "mine"):
        visible.append({"owner_id": principal.user_id})
    if query.scope == "all" and teachers:
        visible.append({"owner_id": {"$in": teachers}, "visibility": "private"})
    filters: list[dict[str, Any]] = [{"$or": visible}]
    if query.text:
        pattern = re.escape(query.text.strip())
        filters.append(
            {
                "$or": [
                    {"title": {"$regex": pattern, "$options": "i"}},
                    {"composer": {"$regex": pattern, "$options": "i"}},
                    {"tags": query.text.strip().lower()},
                ]
            }
        )
    if query.level is not None:
        filters.append({"level": query.level})
    if query.min_level is not None:
        filters.append({"level": {"$gte": query.min_level}})
    if query.max_level is not None:
        filters.append({"level": {"$lte": query.max_level}})
    if query.composer:
        filters.append({"composer": {"$regex": re.escape(query.composer), "$options": "i"}})
    if query.tags:
        filters.append({"tags": {"$all": [t.strip().lower() for t in query.tags]}})
    where = {"$and": filters}
    items = (
        await PieceDoc.find(where)
        .sort("+level", "+title", "+piece_id")
        .skip((query.page - 1) * query.page_size)
        .limit(query.page_size)
        .to_list()
    )
    if query.page == 1 and len(items) < query.page_size:
        return items, len(items)  # the whole result is on this page: no count needed
    return items, await PieceDoc.find(where).count()


def catalogue_entries() -> list[dict[str, Any]]:
    folder = resources.files("sonata_db") / "catalogue"
    entries: list[dict[str, Any]] = json.loads((folder / "catalogue.json").read_text("utf-8"))
    for entry in entries:
        entry["data"] = (folder / entry["file"]).read_bytes()
    return entries


@dataclass(frozen=True)
class SkippedPiece:
    file: str
    reason: str


def parse_catalogue(
    limits: Limits,
) -> tuple[list[tuple[dict[str, Any], ParsedScore]], list[SkippedPiece]]:
    """Blocking: every catalogue piece through the same reader (and limits) as uploads; a
    piece the reader refuses is skipped with its reason, so the rest still load."""
    out, skipped = [], []
    for entry in catalogue_entries():
        try:
            out.append((entry, parse_score(entry["data"], entry["file"], limits)))
        except InvalidPieceError as exc:
            skipped.append(SkippedPiece(entry["file"], str(exc)))
    return out, skipped


async def seed_catalogue(
    tx: Transaction, parsed: list[tuple[dict[str, Any], ParsedScore]]
) -> list[str]:
    """Adds the catalogue pieces not yet present; an existing piece is left as it is."""
    added = []
    for entry, score in parsed:
        piece_id = f"catalogue-{entry['slug']}"
        if await PieceDoc.find_one(PieceDoc.piece_id == piece_id, session=tx.session):
            continue
        data = PieceInput(
            level=entry["level"],
            tags=entry["tags"],
            key=entry["key"],
            visibility="public",
            skill_path=entry.get("skill_path"),
            path_order=entry.get("path_order"),
        )
        piece = build_piece(piece_id, score, data, CATALOGUE_OWNER)
        await create_piece(tx, piece, to_json(score.score))
        added.append(piece_id)
    return added
