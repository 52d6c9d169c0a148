"""Use cases of a live session: start, checkpoint, resume, finish, sweep the abandoned."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from sonata_contracts.ai_scoring import PerformanceScored, SessionStarted
from sonata_engine import EngineError, Judgement, Score, SessionOptions, score_from_dict
from sonata_messaging import Transaction, correlation_scope, get_correlation_id

from sonata_scoring.adapters.documents import (
    LiveChunkDoc,
    LiveSessionDoc,
    PerformanceDoc,
    PieceCopy,
    PieceGrant,
)
from sonata_scoring.adapters.repository import get_entitlement
from sonata_scoring.domain.entitlements import Limits, free_entitlement
from sonata_scoring.domain.live import LiveRun
from sonata_scoring.domain.protocol import Start

log = logging.getLogger("sonata_scoring.sessions")
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
    last_seq: int  # the last seq the checkpoint holds
    owner: str
    seen_at: datetime  # the session's last_seen_at as last written
    flushed: int = 0  # how many rows of run.log the checkpoint holds
    chunks: int = 0  # the checkpoint's chunks so far: the next one is chunk `chunks`


_SCORES: OrderedDict[tuple[str, int], Score] = OrderedDict()
_SCORE_CACHE_SIZE = 64


async def _score(piece_id: str, user_id: str) -> tuple[int, Score]:
    """The piece's version and its parsed score, if the user may play it. The score (tens of
    kB) is read and parsed only the first time this process sees that version."""
    pieces = PieceCopy.get_pymongo_collection()
    piece = await pieces.find_one({"piece_id": piece_id}, {"score": 0})
    if piece is None or piece.get("withdrawn") or not await _may_play(piece, user_id):
        raise Refused("unknown_piece", f"no piece {piece_id!r} is available to you")
    version: int = piece["version"]
    key = (piece_id, version)
    score = _SCORES.get(key)
    if score is None:
        doc = await pieces.find_one({"piece_id": piece_id, "version": version}, {"score": 1})
        if doc is None:  # replaced by a newer version between the two reads
            raise Refused("unknown_piece", f"piece {piece_id!r} changed; start again")
        try:
            score = score_from_dict(doc["score"])
        except EngineError as exc:
            raise Refused("piece_unreadable", f"the piece's score cannot be read: {exc}") from None
        _SCORES[key] = score
        if len(_SCORES) > _SCORE_CACHE_SIZE:
            _SCORES.popitem(last=False)
    _SCORES.move_to_end(key)
    return version, score


async def _may_play(piece: dict[str, Any], user_id: str) -> bool:
    """Public pieces, one's own, and private pieces a teacher assigned to this learner."""
    if piece["visibility"] != "private" or piece.get("owner_id") == user_id:
        return True
    grant = await PieceGrant.get_pymongo_collection().find_one(
        {"piece_id": piece["piece_id"], "user_id": user_id}, {"_id": 1}
    )
    return grant is not None


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
    version, score = await _score(start.piece_id, user_id)
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
            piece_id=start.piece_id,
            piece_version=version,
            options=asdict(options),
            status="live",
            day=day,
            started_at=now,
            last_seen_at=now,
            last_seq=start.seq,
            owner=owner,
            correlation_id=get_correlation_id(),
        ).insert(session=tx.session)
        await tx.publish(
            SessionStarted(
                session_id=session_id,
                user_id=user_id,
                piece_id=start.piece_id,
                piece_version=version,
                started_at=now,
                options=asdict(options),
            )
        )

    await transaction(use_case)
    return LiveHandle(session_id, user_id, start.piece_id, version, now, run, start.seq, owner, now)


async def checkpoint(handle: LiveHandle, seq: int, now: datetime, touch_after_s: float) -> None:
    """Persist what was applied up to `seq`; only then may the server acknowledge it."""
    if not (await checkpoint_many([(handle, seq)], now, touch_after_s))[0]:
        raise SessionGone("the session was finished or taken over by another connection")


async def checkpoint_many(
    batch: list[tuple[LiveHandle, int]], now: datetime, touch_after_s: float
) -> list[bool]:
    """Checkpoint many sessions in one insert (a group commit across the process's sessions):
    each gets one chunk with the rows applied since its last one. Says for each whether it was
    written (False: another connection took the session over and its chunk number is taken);
    `handle.last_seq` is then what the checkpoint holds, the seq to acknowledge. A session's
    `last_seen_at` is refreshed when it is older than `touch_after_s`."""
    if not batch:
        return []
    docs: list[dict[str, Any]] = [
        {
            "session_id": h.session_id,
            "n": h.chunks,
            "owner": h.owner,
            "last_seq": seq,
            "rows": h.run.log[h.flushed :],
            "at": now,
        }
        for h, seq in batch
    ]
    chunks = LiveChunkDoc.get_pymongo_collection()
    taken: set[int] = set()
    try:
        await chunks.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise  # the database failed: the caller retries, nothing is acknowledged
        taken = {e["index"] for e in errors}
    held: dict[tuple[str, int], dict[str, Any]] = {}
    if taken:
        # a chunk number already written: by this connection in a round that failed half way
        # (it holds, and counts), or by the connection that took the session over (stop)
        wanted = [{"session_id": docs[i]["session_id"], "n": docs[i]["n"]} for i in taken]
        cursor = chunks.find({"$or": wanted}, {"session_id": 1, "n": 1, "owner": 1,
                                                "last_seq": 1, "rows": 1})  # fmt: skip
        held = {(d["session_id"], d["n"]): d async for d in cursor}
    written: list[bool] = []
    for i, ((handle, _), doc) in enumerate(zip(batch, docs, strict=True)):
        if i in taken:
            doc = held.get((handle.session_id, handle.chunks), {})
            if doc.get("owner") != handle.owner:
                written.append(False)
                continue
        handle.flushed += len(doc["rows"])
        handle.last_seq = doc["last_seq"]
        handle.chunks += 1
        written.append(True)
    await touch_sessions(
        [h for (h, _), ok in zip(batch, written, strict=True) if ok], now, touch_after_s
    )
    return written


async def touch_sessions(handles: list[LiveHandle], now: datetime, touch_after_s: float) -> None:
    """Refresh `last_seen_at` of the sessions whose stored one is older than `touch_after_s`:
    a session with a live connection is never taken for abandoned, whatever that connection
    sends (notes, or only pings while paused)."""
    stale = [h for h in handles if (now - h.seen_at).total_seconds() >= touch_after_s]
    if not stale:
        return
    try:
        await LiveSessionDoc.get_pymongo_collection().bulk_write(
            [
                UpdateOne(
                    {"session_id": h.session_id, "owner": h.owner, "status": "live"},
                    {"$set": {"last_seen_at": now}},
                )
                for h in stale
            ],
            ordered=False,
        )
    except PyMongoError:
        # a checkpoint's chunks are written and will be acknowledged; the next round tries again
        log.warning("refreshing last_seen_at of %d live sessions failed", len(stale))
    else:
        for h in stale:
            h.seen_at = now


async def resume_session(
    session_id: str, user_id: str, replay_after: int
) -> tuple[LiveHandle, dict[int, list[Judgement]]]:
    owner = uuid.uuid4().hex
    await LiveSessionDoc.get_pymongo_collection().update_one(
        {"session_id": session_id, "user_id": user_id, "status": "live"},
        {"$set": {"owner": owner}},
    )
    doc = await LiveSessionDoc.find_one(LiveSessionDoc.session_id == session_id)
    if doc is None or doc.user_id != user_id:
        raise Refused("unknown_session", "no such session of yours")
    if doc.status != "live":
        raise Refused("session_finished", "the session is finished", doc.performance_id)
    return await _rebuild(doc, replay_after, take_over=owner)


async def _rebuild(
    doc: LiveSessionDoc, replay_after: int, take_over: str | None = None
) -> tuple[LiveHandle, dict[int, list[Judgement]]]:
    """The session's run from its chunks. With `take_over`, that owner also writes the next
    chunk, empty: from then on a connection still holding the session cannot write."""
    _, score = await _score(doc.piece_id, doc.user_id)
    chunks = LiveChunkDoc.get_pymongo_collection()
    for _ in range(20):
        rows: list[list[Any]] = []
        last_seq, n = doc.last_seq, 0
        async for chunk in chunks.find({"session_id": doc.session_id}).sort("n", 1):
            rows += chunk["rows"]
            last_seq, n = chunk["last_seq"], n + 1
        if take_over is None:
            break
        fence = {"session_id": doc.session_id, "n": n, "owner": take_over,
                 "last_seq": last_seq, "rows": [], "at": datetime.now(UTC)}  # fmt: skip
        try:
            await chunks.insert_one(fence)
        except DuplicateKeyError:
            continue  # the connection taken over wrote one more chunk just now: read again
        n += 1
        break
    else:
        raise Refused("session_busy", "another connection keeps writing to it; resume again")
    options = SessionOptions(**doc.options)
    run, replay = LiveRun.rebuild(score, options, rows, replay_after)
    handle = LiveHandle(
        doc.session_id,
        doc.user_id,
        doc.piece_id,
        doc.piece_version,
        doc.started_at,
        run,
        last_seq,
        take_over or doc.owner,
        doc.last_seen_at,
        flushed=len(rows),
        chunks=n,
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
        # the notes live on in the report; the checkpoint has done its work
        await LiveChunkDoc.get_pymongo_collection().delete_many(
            {"session_id": handle.session_id}, session=tx.session
        )
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
        with correlation_scope(doc.correlation_id):
            finished += await _finish_abandoned(transaction, doc, now)
    return finished


async def _finish_abandoned(
    transaction: RunInTransaction, doc: LiveSessionDoc, now: datetime
) -> int:
    try:
        handle, _ = await _rebuild(doc, replay_after=2**32)
        if not any(row[1] == "e" for row in handle.run.log):
            # nothing was played: close it without a report, nothing to score
            await LiveSessionDoc.get_pymongo_collection().update_one(
                {"session_id": doc.session_id, "status": "live"},
                {"$set": {"status": "finished"}},
            )
            await LiveChunkDoc.get_pymongo_collection().delete_many({"session_id": doc.session_id})
            return 0
        await finish_session(transaction, handle, now, by="abandoned")
    except (SessionGone, Refused):
        return 0
    log.info("finished abandoned session %s", doc.session_id)
    return 1
