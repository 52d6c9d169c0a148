"""Events per name per UTC day, updated in the consumer's transaction; the Prometheus counter
follows once that transaction commits."""

from __future__ import annotations

from prometheus_client import Counter
from sonata_contracts import Event
from sonata_messaging import Transaction

from sonata_metrics.adapters.documents import DailyEventCount
from sonata_metrics.domain.kpis import day_of

DOMAIN_EVENTS = Counter(
    "sonata_domain_events_total",
    "Domain events counted into the KPIs (once committed), by name.",
    ["event"],
)


async def count_event(event: Event, tx: Transaction) -> None:
    await DailyEventCount.get_pymongo_collection().update_one(
        {"day": day_of(event.occurred_at).isoformat(), "name": event.NAME},
        {"$inc": {"total": 1}},
        upsert=True,
        session=tx.session,
    )
    # Counted once the transaction commits: a rolled-back or retried handler counts nothing.
    counter = DOMAIN_EVENTS.labels(event.NAME)
    tx.after_commit(counter.inc)


async def counts_for(day: str) -> dict[str, int]:
    rows = await DailyEventCount.find(DailyEventCount.day == day).to_list()
    return {row.name: row.total for row in rows}
