"""The fleet's domain events: versioned, frozen models, one module per producer."""

from sonata_contracts.base import Event
from sonata_contracts.registry import (
    REGISTRY,
    ContractError,
    InvalidEventError,
    UnknownEventError,
    event_type,
    parse_event,
)

__all__ = [
    "REGISTRY",
    "ContractError",
    "Event",
    "InvalidEventError",
    "UnknownEventError",
    "event_type",
    "parse_event",
]
