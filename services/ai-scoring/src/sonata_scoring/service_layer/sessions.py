"""Use cases of a live session: start, checkpoint, resume, finish, sweep the abandoned."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from sonata_contracts.ai_scoring import PerformanceScored, SessionStarted
from sonata_engine import EngineError, Judgement, Score, SessionOptions, score_from_dict
from sonata_messaging import Transaction

from sonata_scoring.adapters.documents import LiveSessionDoc, PerformanceDoc, PieceCopy
from sonata_scoring.adapters.repository import get_entitlement
from sonata_scoring.domain.entitlements import Limits, free_entitlement
from sonata_scoring.domain.live import LiveRun
from sonata_scoring.domain.protocol import Start

RunInTransaction = Any  # Runtime.transaction: (fn: (Transaction) -> Awaitable[T]) -> T


class Refused(Exception):  # noqa: N818 - an answer to the learner, not a fault
    """A session that cannot start: why, and what would make it possible."""

    def __init__(self, code: str, detail: str, unlock: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.unlock = unlock


class SessionGone(Exception):  # noqa: N818 - a state, not a fault
    """A checkpoint or resume that lost to another writer, or a session already finished."""


@dataclass
class LiveHandle:
    session_id: str
    user_id: str
    piece_id: str
    piece_version: int
    started_at: datetime
    run: LiveRun
    last_seq: int  # the last seq written to the checkpoint
    owner: str
    flushed: int = 0  # how many rows of run.log the checkpoint holds


_SCORES: OrderedDict[tuple[str, int], Score] = OrderedDict()
_SCORE_CACHE_SIZE = 64


async def _score(piece_id: str, user_id: str) -> tuple[PieceCopy, Score]:
    piece = await PieceCopy.find_one(PieceCopy.piece_id == piece_id)
    if (
        piece is None
        or piece.withdrawn
        or (piece.visibility == "private" and piece.owner_id != user_id)
    ):
        raise Refused("unknown_piece", f"no piece {piece_id!r} is available to you")
    key = (piece.piece_id, piece.version)
    score = _SCORES.get(key)
    if score is None:
        try:
            score = score_from_dict(piece.score)
        except EngineError as exc:
            raise Refused("piece_unreadable", f"the piece's score cannot be read: {exc}") from None
        _SCORES[key] = score
        if len(_SCORES) > _SCORE_CACHE_SIZE:
            _SCORES.popitem(last=False)
    _SCORES.move_to_end(key)
    return piece, score


def _options(start: Start) -> SessionOptions:
    return SessionOptions(
        hands=start.hands,
        first_bar=start.first_bar,
        last_bar=start.last_bar,
        tempo_percent=start.tempo_percent,
        mode=start.mode,
        strictness=start.strictness,
    )


async def start_session(
    transaction: RunInTransaction, user_id: str, start: Start, free: Limits, now: datetime
) -> LiveHandle:
    piece, score = await _score(start.piece_id, user_id)
    options = _options(start)
    try:
        run = LiveRun(score, options)
    except EngineError as exc:
        raise Refused("bad_options", str(exc)) from None
    known = await get_entitlement(user_id)
    plan = (known or free_entitlement(user_id, free, now)).effective(now, free)
    day = now.date().isoformat()
    session_id = uuid.uuid4().hex
    owner = uuid.uuid4().hex

    async def use_case(tx: Transaction) -> None:
        limit = plan.limits.scored_sessions_per_day
        if limit is not None:
            used = await LiveSessionDoc.get_pymongo_collection().count_documents(
                {"user_id": user_id, "day": day}, session=tx.session
            )
            if used >= limit:
                raise Refused(
                    "daily_limit",
                    f"the {plan.plan} plan scores {limit} sessions a day and today's are used",
                    "a paid plan lifts the daily limit; the count starts again at 00:00 UTC",
                )
        await LiveSessionDoc(
            session_id=session_id,
            user_id=user_id,
            piece_id=piece.piece_id,
            piece_version=piece.version,
            options=asdict(options),
            status="live",
            day=day,
            started_at=now,
            last_seen_at=now,
            last_seq=start.seq,
            log=[],
            owner=owner,
        ).insert(session=tx.session)
        await tx.publish(
            SessionStarted(
                session_id=session_id,
                user_id=user_id,
                piece_id=piece.piece_id,
                piece_version=piece.version,
                started_at=now,
                options=asdict(options),
            )
        )

    await transaction(use_case)
    return LiveHandle(
        session_id, user_id, piece.piece_id, piece.version, now, run, start.seq, owner
    )


def _checkpoint_op(handle: LiveHandle, seq: int, now: datetime) -> tuple[UpdateOne, int]:
    rows = handle.run.log[handle.flushed :]
    update: dict[str, Any] = {"$set": {"last_seq": seq, "last_seen_at": now}}
    if rows:
        update["$push"] = {"log": {"$each": rows}}
    guard = {
        "session_id": handle.session_id,
        "status": "live",
        "owner": handle.owner,
        "last_seq": handle.last_seq,
    }
    return UpdateOne(guard, update), len(rows)


async def checkpoint(handle: LiveHandle, seq: int, now: datetime) -> None:
    """Persist what was applied up to `seq`; only then may the server acknowledge it."""
    if not (await checkpoint_many([(handle, seq)], now))[0]:
        raise SessionGone("the session was finished or taken over by another connection")


async def checkpoint_many(batch: list[tuple[LiveHandle, int]], now: datetime) -> list[bool]:
    """Checkpoint many sessions in one database round trip (a group commit across the
    process's sessions); says for each whether it was written (False: the session was finished
    or taken over by another connection)."""
    if not batch:
        return []
    ops = [_checkpoint_op(handle, seq, now) for handle, seq in batch]
    collection = LiveSessionDoc.get_pymongo_collection()
    result = await collection.bulk_write([op for op, _ in ops], ordered=False)
    if result.matched_count == len(batch):
        written = [True] * len(batch)
    else:
        # some lost to another writer: the ones written now hold this owner and seq
        held = collection.find(
            {"$or": [{"session_id": h.session_id, "owner": h.owner} for h, _ in batch]},
            {"session_id": 1, "last_seq": 1},
        )
        now_at = {doc["session_id"]: doc["last_seq"] async for doc in held}
        written = [now_at.get(h.session_id) == seq for h, seq in batch]
    for ok, (handle, seq), (_, rows) in zip(written, batch, ops, strict=True):
        if ok:
            handle.flushed += rows
            handle.last_seq = seq
    return written


async def resume_session(
    session_id: str, user_id: str, replay_after: int
) -> tuple[LiveHandle, dict[int, list[Judgement]]]:
    # take the session over first: from here on a connection still holding it cannot write
    await LiveSessionDoc.get_pymongo_collection().update_one(
        {"session_id": session_id, "user_id": user_id, "status": "live"},
        {"$set": {"owner": uuid.uuid4().hex}},
    )
    doc = await LiveSessionDoc.find_one(LiveSessionDoc.session_id == session_id)
    if doc is None or doc.user_id != user_id:
        raise Refused("unknown_session", "no such session of yours")
    if doc.status != "live":
        raise Refused("session_finished", "the session is finished", doc.performance_id)
    return await _rebuild(doc, replay_after)


async def _rebuild(
    doc: LiveSessionDoc, replay_after: int
) -> tuple[LiveHandle, dict[int, list[Judgement]]]:
    _, score = await _score(doc.piece_id, doc.user_id)
    options = SessionOptions(**doc.options)
    run, replay = LiveRun.rebuild(score, options, doc.log, replay_after)
    handle = LiveHandle(
        doc.session_id,
        doc.user_id,
        doc.piece_id,
        doc.piece_version,
        doc.started_at,
        run,
        doc.last_seq,
        doc.owner,
        flushed=len(doc.log),
    )
    return handle, replay


async def finish_session(
    transaction: RunInTransaction, handle: LiveHandle, now: datetime, by: str = "learner"
) -> dict[str, Any]:
    # the offline re-alignment takes tens of ms: off the event loop, other sessions keep going
    report = (await asyncio.to_thread(handle.run.finish)).to_dict()
    performance_id = uuid.uuid4().hex
    subscores: dict[str, float | None] = report["subscores"]
    duration = float(report["summary"].get("duration_s") or 0.0)

    async def use_case(tx: Transaction) -> None:
        closed = await LiveSessionDoc.get_pymongo_collection().update_one(
            {"session_id": handle.session_id, "status": "live"},
            {"$set": {"status": "finished", "performance_id": performance_id}},
            session=tx.session,
        )
        if closed.matched_count != 1:
            raise SessionGone("the session was already finished")
        await PerformanceDoc(
            performance_id=performance_id,
            session_id=handle.session_id,
            user_id=handle.user_id,
            piece_id=handle.piece_id,
            piece_version=handle.piece_version,
            started_at=handle.started_at,
            finished_at=now,
            finished_by="abandoned" if by == "abandoned" else "learner",
            overall=report["overall"],
            subscores=subscores,
            report=report,
        ).insert(session=tx.session)
        await tx.publish(
            PerformanceScored(
                performance_id=performance_id,
                session_id=handle.session_id,
                user_id=handle.user_id,
                piece_id=handle.piece_id,
                piece_version=handle.piece_version,
                started_at=handle.started_at,
                finished_at=now,
                duration_s=duration,
                overall_score=report["overall"],
                subscores={k: v for k, v in subscores.items() if v is not None},
                report=report,
            )
        )

    await transaction(use_case)
    return {"performance_id": performance_id, "report": report}


async def finish_abandoned(transaction: RunInTransaction, now: datetime, idle_s: float) -> int:
    """Finish every live session nobody has touched for `idle_s`; returns how many."""
    cutoff = now - timedelta(seconds=idle_s)
    finished = 0
    async for doc in LiveSessionDoc.find(
        LiveSessionDoc.status == "live", LiveSessionDoc.last_seen_at < cutoff
    ):
        try:
            handle, _ = await _rebuild(doc, doc.last_seq)
            if not any(row[1] == "e" for row in doc.log):
                # nothing was played: close it without a report, nothing to score
                await LiveSessionDoc.get_pymongo_collection().update_one(
                    {"session_id": doc.session_id, "status": "live"},
                    {"$set": {"status": "finished"}},
                )
                continue
            await finish_session(transaction, handle, now, by="abandoned")
            finished += 1
        except (SessionGone, Refused):
            continue
    return finished
