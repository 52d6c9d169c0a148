"""Every event name a service publishes or consumes exists in the registry and survives the
wire: model -> JSON -> parse_event -> the same event."""

import importlib
import importlib.util
import types
import typing
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, get_args, get_origin
from uuid import uuid4

import pytest
from pydantic import BaseModel
from sonata_contracts import (
    REGISTRY,
    Event,
    InvalidEventError,
    UnknownEventError,
    parse_event,
)

SERVICES = {
    "auth": "sonata_auth.entrypoints.consumer",
    "db": "sonata_db.entrypoints.consumer",
    "ai-scoring": "sonata_scoring.entrypoints.consumer",
    "notifications": "sonata_notifications.entrypoints.consumer",
    "payment": "sonata_payment.entrypoints.consumer",
    "metrics": "sonata_metrics.entrypoints.consumer",
}
PRODUCER_PREFIX = {
    "auth": "auth.",
    "db": "db.",
    "ai-scoring": "ai_scoring.",
    "notifications": "notifications.",
    "payment": "payment.",
    "metrics": "metrics.",
}


def declarations() -> dict[str, types.ModuleType]:
    # auth declares its names once its consumer module exists; the other five always do.
    return {
        service: importlib.import_module(module)
        for service, module in SERVICES.items()
        if importlib.util.find_spec(module) is not None
    }


def example(annotation: Any, name: str) -> Any:
    """A valid, non-default value for a field type."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return example(options[0], name)
    if origin is Literal:
        return get_args(annotation)[-1]
    if origin is list:
        return [example(get_args(annotation)[0], name)]
    if origin is tuple:
        return tuple(example(a, name) for a in get_args(annotation))
    if origin is dict:
        _, value = get_args(annotation)
        return {"k": example(value, name)} if value is not Any else {"nested": {"a": [1, 2]}}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation(
            **{f: example(info.annotation, f) for f, info in annotation.model_fields.items()}
        )
    if annotation is datetime or "AwareDatetime" in repr(annotation):
        return datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC) + timedelta(days=len(name))
    simple: dict[Any, Any] = {str: f"{name}-value", int: 7, float: 0.75, bool: True}
    if annotation in simple:
        return simple[annotation]
    if annotation is date:
        return date(2026, 3, 14)
    raise AssertionError(f"no example for {name}: {annotation!r}")


def build(model: type[Event]) -> Event:
    fields = {
        name: example(info.annotation, name)
        for name, info in model.model_fields.items()
        if name not in ("id", "occurred_at")
    }
    return model(**fields)


def test_the_five_platform_services_declare_what_they_publish_and_consume() -> None:
    declared = declarations()
    assert {"db", "ai-scoring", "notifications", "payment", "metrics"} <= set(declared)
    for module in declared.values():
        assert isinstance(module.PUBLISHES, frozenset)
        assert isinstance(module.CONSUMES, frozenset)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_declared_names_exist_and_belong_to_their_producer(service: str) -> None:
    declared = declarations()
    if service not in declared:
        assert service == "auth"
        names = {n for n in REGISTRY if n.startswith("auth.")}
        assert len(names) == 6
        return
    module = declared[service]
    unknown = (module.PUBLISHES | module.CONSUMES) - set(REGISTRY)
    assert not unknown, f"{service} uses names missing from the registry: {sorted(unknown)}"
    foreign = {n for n in module.PUBLISHES if not n.startswith(PRODUCER_PREFIX[service])}
    assert not foreign, f"{service} publishes names of another producer: {sorted(foreign)}"


def test_everything_consumed_has_a_producer_that_declares_it() -> None:
    declared = declarations()
    published = set().union(*(m.PUBLISHES for m in declared.values()))
    for service, module in declared.items():
        if service == "metrics":
            continue  # bound to `#`: it consumes whatever exists
        for name in module.CONSUMES:
            producer = next(s for s, p in PRODUCER_PREFIX.items() if name.startswith(p))
            if producer in declared:
                assert name in published, f"{service} consumes {name} that nobody publishes"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_event_round_trips_through_json(name: str) -> None:
    model = REGISTRY[name]
    assert name == model.NAME
    original = build(model)
    parsed = parse_event(name, original.to_json())
    assert parsed == original
    assert type(parsed) is model
    assert parsed.occurred_at.tzinfo is not None


def test_events_are_frozen_and_reject_naive_datetimes() -> None:
    from sonata_contracts.auth import UserDeleted

    event = UserDeleted(user_id="u-1")
    with pytest.raises(Exception, match="frozen"):
        event.user_id = "u-2"  # type: ignore[misc]
    with pytest.raises(Exception, match="timezone"):
        UserDeleted(user_id="u-1", occurred_at=datetime(2026, 1, 1))


def test_additive_fields_from_a_newer_producer_are_ignored() -> None:
    from sonata_contracts.auth import UserDeleted

    event = UserDeleted(user_id="u-9")
    newer = event.model_dump_json()[:-1] + ', "reason": "gdpr-request"}'
    assert parse_event(UserDeleted.NAME, newer) == event


def test_unknown_names_and_broken_bodies_are_named_in_the_error() -> None:
    with pytest.raises(UnknownEventError, match=r"auth\.user_exploded\.v1"):
        parse_event("auth.user_exploded.v1", b"{}")
    with pytest.raises(InvalidEventError, match="user_id"):
        parse_event("auth.user_deleted.v1", b'{"id": "' + str(uuid4()).encode() + b'"}')
    with pytest.raises(InvalidEventError, match="Invalid JSON"):
        parse_event("auth.user_deleted.v1", b"{oops")
