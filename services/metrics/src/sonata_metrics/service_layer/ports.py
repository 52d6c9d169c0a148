"""What the KPI use cases need from storage; Mongo in production, in-memory in unit tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Protocol

from sonata_metrics.domain.kpis import Streak, Subscription


class KpiWriter(Protocol):
    """Writes of one consumed event, all inside its inbox transaction."""

    async def add(self, day: date, counts: Mapping[str, float]) -> None: ...

    async def mark_active(self, day: date, user_id: str) -> bool:
        """Record the learner active that day; True the first time for that day."""
        ...

    async def subscription(self, subscription_id: str) -> Subscription | None: ...

    async def save_subscription(self, subscription: Subscription) -> None: ...

    async def streak(self, user_id: str) -> Streak | None: ...

    async def save_streak(self, streak: Streak) -> None: ...

    async def save_timezone(self, user_id: str, timezone: str) -> None:
        """The learner's zone, in which db counts their streak's days."""
        ...

    async def forget_user(self, user_id: str) -> None:
        """Unlink the figures from the person: keep counts, drop the identifier."""
        ...


class KpiReader(Protocol):
    async def counts(self, first: date, last: date) -> dict[date, dict[str, float]]: ...

    async def learner_days(self, first: date, last: date) -> list[tuple[date, str]]: ...

    async def subscriptions(self) -> list[Subscription]:
        """Every subscription's latest state (live or not)."""
        ...

    async def streaks(self) -> list[Streak]: ...

    async def timezones(self, user_ids: list[str]) -> dict[str, str]:
        """The known zone of each of ``user_ids`` (a user never registered here is missing)."""
        ...
