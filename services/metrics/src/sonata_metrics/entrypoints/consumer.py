"""What metrics consumes: every domain event (bound with `#`); it publishes nothing."""

from sonata_contracts import REGISTRY

from sonata_metrics.adapters.rollups import count_event

PUBLISHES: frozenset[str] = frozenset()
CONSUMES: frozenset[str] = frozenset(REGISTRY)
CATCH_ALL = count_event
