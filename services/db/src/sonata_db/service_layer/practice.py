"""The practice record: performances from ai-scoring, and what they add up to."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sonata_contracts.ai_scoring import PerformanceScored
from sonata_contracts.auth import UserRegistered
from sonata_contracts.db import (
    AchievementUnlocked,
    MasteryReached,
    PerformanceRecorded,
    StreakChanged,
)
from sonata_messaging import Transaction

from sonata_db.adapters.documents import (
    LearnerProfile,
    PerformanceRecord,
    PerformanceReport,
    PieceDoc,
    Unlock,
)
from sonata_db.domain.library import BarRange, bar_accuracy, section_scores
from sonata_db.domain.progress import is_mastered, known_timezone, local_day, streak_change
from sonata_db.service_layer.teaching import complete_assignments

ACHIEVEMENTS = {
    "first_performance": "First performance recorded",
    "first_mastery": "First piece mastered",
    "score_90": "A performance scored 90 or more",
    "streak_7": "Seven practice days in a row",
}


async def profile_of(user_id: str, tx: Transaction | None = None) -> LearnerProfile:
    session = tx.session if tx is not None else None
    found = await LearnerProfile.find_one(LearnerProfile.user_id == user_id, session=session)
    return found or LearnerProfile(user_id=user_id)


async def remember_timezone(event: UserRegistered, tx: Transaction) -> None:
    """A new account's timezone, so streaks count the learner's days from the first one."""
    profile = await profile_of(event.user_id, tx)
    if profile.id is not None:
        return
    if not known_timezone(event.timezone):
        return  # days are counted in UTC until the learner sets a zone db knows
    profile.timezone = event.timezone
    await profile.insert(session=tx.session)


async def _unlock(tx: Transaction, user_id: str, kind: str, key: str, at: datetime) -> bool:
    known = await Unlock.find_one(
        Unlock.user_id == user_id, Unlock.kind == kind, Unlock.key == key, session=tx.session
    )
    if known is not None:
        return False
    await Unlock(user_id=user_id, kind=kind, key=key, at=at).insert(session=tx.session)
    return True


async def _achieve(
    tx: Transaction, user_id: str, name: str, at: datetime, piece_id: str | None = None
) -> None:
    if await _unlock(tx, user_id, "achievement", name, at):
        await tx.publish(
            AchievementUnlocked(
                user_id=user_id, achievement=name, title=ACHIEVEMENTS[name], piece_id=piece_id
            )
        )


async def next_on_path(piece: PieceDoc | None) -> list[str]:
    if piece is None or piece.skill_path is None or piece.path_order is None:
        return []
    following = await PieceDoc.find_one(
        PieceDoc.skill_path == piece.skill_path, PieceDoc.path_order == piece.path_order + 1
    )
    return [following.piece_id] if following else []


async def _earlier(tx: Transaction, user_id: str) -> list[dict[str, Any]]:
    cursor = PerformanceRecord.get_pymongo_collection().find(
        {"user_id": user_id},
        {"piece_id": 1, "local_day": 1, "overall_score": 1, "finished_at": 1, "_id": 0},
        session=tx.session,
    )
    return [row async for row in cursor]


async def record_performance(event: PerformanceScored, tx: Transaction, threshold: float) -> None:
    existing = await PerformanceRecord.find_one(
        PerformanceRecord.performance_id == event.performance_id, session=tx.session
    )
    if existing is not None:
        return  # the same performance re-sent under a new event id
    profile = await profile_of(event.user_id, tx)
    piece = await PieceDoc.find_one(PieceDoc.piece_id == event.piece_id, session=tx.session)
    sections = [BarRange(s.name, s.first_bar, s.last_bar) for s in piece.sections] if piece else []
    bars = [b for b in event.report.get("bars", []) if isinstance(b, dict)]
    accuracy = bar_accuracy(bars)
    day = local_day(event.finished_at, profile.timezone)
    earlier = await _earlier(tx, event.user_id)
    record = PerformanceRecord(
        performance_id=event.performance_id,
        session_id=event.session_id,
        user_id=event.user_id,
        piece_id=event.piece_id,
        piece_version=event.piece_version,
        started_at=event.started_at,
        finished_at=event.finished_at,
        local_day=day.isoformat(),
        duration_s=event.duration_s,
        overall_score=event.overall_score,
        subscores=event.subscores,
        bar_accuracy={str(k): v for k, v in accuracy.items()},
        section_scores=section_scores(accuracy, sections),
    )
    await record.insert(session=tx.session)
    await PerformanceReport(
        performance_id=event.performance_id, user_id=event.user_id, report=event.report
    ).insert(session=tx.session)
    await tx.publish(
        PerformanceRecorded(
            performance_id=event.performance_id,
            user_id=event.user_id,
            piece_id=event.piece_id,
            piece_version=event.piece_version,
            overall_score=event.overall_score,
            duration_s=event.duration_s,
            played_at=event.finished_at,
        )
    )
    when = event.finished_at
    if not earlier:
        await _achieve(tx, event.user_id, "first_performance", when)
    if event.overall_score >= 90:
        await _achieve(tx, event.user_id, "score_90", when, event.piece_id)

    days = [date.fromisoformat(r["local_day"]) for r in earlier if r.get("local_day")]
    change = streak_change(days, day, profile.rest_days_per_week)
    if change is not None:
        await tx.publish(
            StreakChanged(
                user_id=event.user_id,
                days=change.days,
                previous_days=change.previous_days,
                on_day=day,
                status="extended" if change.status == "extended" else "broken",
            )
        )
        if change.days >= 7:
            await _achieve(tx, event.user_id, "streak_7", when)

    # In the order they were played, not received: a take arriving late takes its own place.
    same_piece = sorted(
        [
            *(
                (r["finished_at"], float(r["overall_score"]))
                for r in earlier
                if r["piece_id"] == event.piece_id
            ),
            (event.finished_at, event.overall_score),
        ],
        key=lambda taken: taken[0],
    )
    scores = [score for _, score in same_piece]
    if is_mastered(scores, threshold) and await _unlock(
        tx, event.user_id, "mastery", event.piece_id, when
    ):
        await tx.publish(
            MasteryReached(
                user_id=event.user_id,
                piece_id=event.piece_id,
                threshold=threshold,
                unlocked_piece_ids=await next_on_path(piece),
            )
        )
        await _achieve(tx, event.user_id, "first_mastery", when, event.piece_id)
    await complete_assignments(tx, event)
