"""The learner's own performances: the stored report and the coach's feedback on it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sonata_kit import CurrentPrincipal, Forbidden, NotFound

from sonata_scoring.adapters.coach_store import MongoConversations, MongoUsageLedger, OwnRecords
from sonata_scoring.adapters.documents import PerformanceDoc
from sonata_scoring.adapters.repository import coach_unlocked, get_entitlement
from sonata_scoring.domain.coach import Feedback
from sonata_scoring.domain.entitlements import Entitlement, coach_refusal, free_entitlement
from sonata_scoring.entrypoints.http import free_limits
from sonata_scoring.metrics import COACH_SECONDS_DETERMINISTIC, COACH_SECONDS_OPENAI
from sonata_scoring.service_layer.coach import CoachAnswer, Focus, coach_chat, coach_feedback
from sonata_scoring.settings import ScoringSettings

router = APIRouter(prefix="/v1/performances", tags=["performances"])
chat_router = APIRouter(prefix="/v1/coach", tags=["coach"])
# what a plan without full reports sees of the engine's report
SUMMARY_KEYS = ("overall", "subscores", "summary", "findings", "options", "formula", "weights")


class PerformanceOut(BaseModel):
    performance_id: str
    session_id: str
    piece_id: str
    piece_version: int
    started_at: datetime
    finished_at: datetime
    finished_by: str
    overall: float
    subscores: dict[str, float | None]
    full_report: bool
    report: dict[str, Any]


class CoachOut(BaseModel):
    performance_id: str
    source: str  # "model" or "deterministic"
    fallback_reason: str | None
    feedback: Feedback


class ChatIn(BaseModel):
    message: str = Field(min_length=1, max_length=2000)
    # the performance the question is about: the chat then keeps that conversation
    performance_id: str | None = Field(default=None, min_length=1, max_length=64)


class ChatOut(BaseModel):
    performance_id: str | None
    answer: str
    tools_called: list[str]
    source: str
    fallback_reason: str | None


async def _plan(request: Request, user_id: str) -> Entitlement:
    settings: ScoringSettings = request.app.state.settings
    now = datetime.now(UTC)
    free = free_limits(settings)
    known = await get_entitlement(user_id)
    return (known or free_entitlement(user_id, free, now)).effective(now, free)


async def _own(performance_id: str, user_id: str) -> PerformanceDoc:
    doc = await PerformanceDoc.find_one(PerformanceDoc.performance_id == performance_id)
    # someone else's performance is as absent as one that never existed
    if doc is None or doc.user_id != user_id:
        raise NotFound(f"no performance {performance_id} of yours", code="performance_not_found")
    return doc


@router.get("/{performance_id}")
async def get_performance(
    performance_id: str, principal: CurrentPrincipal, request: Request
) -> PerformanceOut:
    """One of the caller's performances with its report (the full one on plans that have it)."""
    doc = await _own(performance_id, principal.user_id)
    full = (await _plan(request, principal.user_id)).limits.full_reports
    report = doc.report if full else {k: doc.report[k] for k in SUMMARY_KEYS if k in doc.report}
    return PerformanceOut(
        performance_id=doc.performance_id,
        session_id=doc.session_id,
        piece_id=doc.piece_id,
        piece_version=doc.piece_version,
        started_at=doc.started_at,
        finished_at=doc.finished_at,
        finished_by=doc.finished_by,
        overall=doc.overall,
        subscores=doc.subscores,
        full_report=full,
        report=report,
    )


@router.get("/{performance_id}/coach")
async def performance_coach(
    performance_id: str, principal: CurrentPrincipal, request: Request
) -> CoachOut:
    """The coach's feedback on one performance, built from its measured report only: on a plan
    with the coach, or once a credit was spent on this performance (`coach:<performance_id>`
    at payment)."""
    doc = await _own(performance_id, principal.user_id)
    plan = await _plan(request, principal.user_id)
    unlocked = not plan.limits.coach and await coach_unlocked(principal.user_id, performance_id)
    refused = coach_refusal(plan.limits, plan.plan, unlocked, performance_id)
    if refused is not None:
        raise Forbidden(refused, code="coach_not_in_plan")
    settings: ScoringSettings = request.app.state.settings
    now = datetime.now(UTC)
    started = time.perf_counter()
    feedback, how = await coach_feedback(
        principal.user_id,
        doc.report,
        request.app.state.coach_model,
        MongoUsageLedger(),
        settings.coach_daily_budget_usd,
        now,
        _day_start(now),
    )
    _answered(how, started)
    return CoachOut(
        performance_id=doc.performance_id,
        source=how.source,
        fallback_reason=how.fallback_reason,
        feedback=feedback,
    )


def _answered(how: CoachAnswer, started: float) -> None:
    """The answer's time on /metrics, by who worded it (a fallback's includes the failed call)."""
    seconds = COACH_SECONDS_OPENAI if how.source == "model" else COACH_SECONDS_DETERMINISTIC
    seconds.observe(time.perf_counter() - started)


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@chat_router.post("/chat")
async def chat(body: ChatIn, principal: CurrentPrincipal, request: Request) -> ChatOut:
    """Ask the coach about your own practice; it reads only your sessions and performances."""
    plan = await _plan(request, principal.user_id)
    if not plan.limits.coach:
        raise Forbidden(
            f"the {plan.plan} plan has no coach; a paid plan with the coach unlocks it",
            code="coach_not_in_plan",
        )
    focus = None
    if body.performance_id is not None:
        doc = await _own(body.performance_id, principal.user_id)
        focus = Focus(doc.performance_id, doc.piece_id, doc.report)
    settings: ScoringSettings = request.app.state.settings
    now = datetime.now(UTC)
    started = time.perf_counter()
    answer, called, how = await coach_chat(
        principal.user_id,
        body.message,
        focus,
        request.app.state.coach_model,
        OwnRecords(principal.user_id),
        MongoConversations(settings.coach_history_turns),
        MongoUsageLedger(),
        settings.coach_daily_budget_usd,
        now,
        _day_start(now),
    )
    _answered(how, started)
    return ChatOut(
        performance_id=body.performance_id,
        answer=answer,
        tools_called=called,
        source=how.source,
        fallback_reason=how.fallback_reason,
    )
