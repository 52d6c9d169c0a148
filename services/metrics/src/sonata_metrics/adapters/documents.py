from typing import ClassVar

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, IndexModel


class DailyEventCount(Document):
    """How many events of one name occurred on one UTC day."""

    day: str  # YYYY-MM-DD, UTC, from the event's occurred_at
    name: str
    total: int = Field(ge=0)

    class Settings:
        name = "daily_event_counts"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("day", ASCENDING), ("name", ASCENDING)], unique=True)
        ]
