from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sonata_kit import CurrentPrincipal

from sonata_scoring.adapters.repository import get_entitlement
from sonata_scoring.domain.entitlements import Limits, free_entitlement
from sonata_scoring.settings import ScoringSettings

router = APIRouter(prefix="/v1", tags=["entitlements"])


class LimitsOut(BaseModel):
    scored_sessions_per_day: int | None
    coach: bool
    full_reports: bool
    teacher_seats: int


class EntitlementsOut(BaseModel):
    user_id: str
    plan: str
    limits: LimitsOut
    valid_until: datetime | None
    source: Literal["payment", "default"]


def free_limits(settings: ScoringSettings) -> Limits:
    return Limits(
        scored_sessions_per_day=settings.free_scored_sessions_per_day,
        coach=settings.free_coach,
        full_reports=settings.free_full_reports,
        teacher_seats=settings.free_teacher_seats,
    )


@router.get("/entitlements/me")
async def my_entitlements(principal: CurrentPrincipal, request: Request) -> EntitlementsOut:
    """The caller's plan limits as ai-scoring enforces them."""
    settings: ScoringSettings = request.app.state.settings
    now = datetime.now(UTC)
    free = free_limits(settings)
    known = await get_entitlement(principal.user_id)
    current = (known or free_entitlement(principal.user_id, free, now)).effective(now, free)
    return EntitlementsOut(
        user_id=principal.user_id,
        plan=current.plan,
        limits=LimitsOut(**vars(current.limits)),
        valid_until=current.valid_until,
        source="payment" if known is not None else "default",
    )
