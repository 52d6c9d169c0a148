from datetime import date

from fastapi import APIRouter
from pydantic import BaseModel

from sonata_metrics.adapters.rollups import counts_for

router = APIRouter(prefix="/v1", tags=["rollups"])


class DailyCounts(BaseModel):
    day: date
    events: dict[str, int]


@router.get("/rollups/daily/{day}")
async def daily_counts(day: date) -> DailyCounts:
    """Event counts per name for one UTC day."""
    return DailyCounts(day=day, events=await counts_for(day.isoformat()))
