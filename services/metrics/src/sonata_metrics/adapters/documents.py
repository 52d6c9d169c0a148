from datetime import datetime
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


class DailyKpis(Document):
    """The counts of one UTC day (`_id` = the day, YYYY-MM-DD): signups, performances,
    practice seconds, score sum, masteries, payment failures, notifications per channel..."""

    id: str  # type: ignore[assignment]  # the day
    counts: dict[str, float] = Field(default_factory=dict)

    class Settings:
        name = "daily_kpis"


class LearnerDay(Document):
    """A learner practised on a UTC day: the base of daily and weekly active learners."""

    day: str
    user_id: str  # a pseudonym once the user is deleted

    class Settings:
        name = "learner_days"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("day", ASCENDING), ("user_id", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING)]),
        ]


class SubscriptionState(Document):
    """The latest state of a subscription (`_id` = its id) from payment's events."""

    id: str  # type: ignore[assignment]
    user_id: str
    plan: str
    status: str
    as_of: datetime
    event_id: str

    class Settings:
        name = "subscriptions"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("user_id", ASCENDING)])]


class StreakState(Document):
    """A learner's current streak (`_id` = the user id) from db's events."""

    id: str  # type: ignore[assignment]
    days: int
    status: str
    on_day: str  # YYYY-MM-DD, the learner's local day the event is about
    as_of: datetime
    event_id: str

    class Settings:
        name = "streaks"


class LearnerZone(Document):
    """A learner's timezone (`_id` = the user id) from auth's signup event: the calendar in
    which their streak's days pass."""

    id: str  # type: ignore[assignment]
    timezone: str

    class Settings:
        name = "learner_zones"


DOCUMENTS: list[type[Document]] = [
    DailyEventCount,
    DailyKpis,
    LearnerDay,
    SubscriptionState,
    StreakState,
    LearnerZone,
]
