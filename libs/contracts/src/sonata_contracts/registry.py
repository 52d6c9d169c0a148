"""Event name -> model, and parsing of a message body into its event."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import ValidationError

from sonata_contracts import ai_scoring, auth, db, notifications, payment
from sonata_contracts.base import Event


class ContractError(ValueError):
    """A message that cannot become an event of the fleet."""


class UnknownEventError(ContractError):
    pass


class InvalidEventError(ContractError):
    pass


def _collect() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    for module in (auth, db, ai_scoring, payment, notifications):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Event) and value.NAME:
                if value.NAME in found and found[value.NAME] is not value:
                    raise RuntimeError(f"event name {value.NAME} defined twice")
                found[value.NAME] = value
    return found


REGISTRY: Mapping[str, type[Event]] = MappingProxyType(_collect())


def event_type(name: str) -> type[Event]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownEventError(f"unknown event name {name!r}") from None


def parse_event(name: str, body: bytes | str) -> Event:
    model = event_type(name)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidEventError(f"{name}: {problems}") from None
