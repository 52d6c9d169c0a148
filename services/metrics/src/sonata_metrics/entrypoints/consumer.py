"""What metrics consumes: every domain event (bound with `#`); it publishes nothing."""

from sonata_contracts import REGISTRY, Event
from sonata_messaging import Transaction

from sonata_metrics.adapters.rollups import count_event
from sonata_metrics.adapters.store import MongoKpiWriter
from sonata_metrics.service_layer.projection import project

PUBLISHES: frozenset[str] = frozenset()
CONSUMES: frozenset[str] = frozenset(REGISTRY)


async def consume(event: Event, tx: Transaction) -> None:
    """Count the event and fold it into the KPIs, in the inbox transaction."""
    await count_event(event, tx)
    await project(event, MongoKpiWriter(tx.session))


CATCH_ALL = consume
