"""metrics as a real process: every domain event is counted once per UTC day of occurrence,
readable over REST and Prometheus."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sonata_contracts import Event
from sonata_contracts.auth import UserDeleted
from sonata_contracts.payment import CreditsChanged
from sonata_testing import ServiceProcess, eventually, publish_events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def metrics(mongo_url: str, amqp_url: str, tmp_path_factory: Any) -> Iterator[ServiceProcess]:
    env = {
        "ENVIRONMENT": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": f"metrics_{uuid.uuid4().hex[:8]}",
        "AMQP_URL": amqp_url,
    }
    service = ServiceProcess(
        "metrics",
        "sonata_metrics.main:create_app",
        env,
        log_dir=tmp_path_factory.mktemp("metrics"),
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


async def test_events_are_rolled_up_per_day_and_name(
    metrics: ServiceProcess, amqp_url: str
) -> None:
    # A day far from today so events of other tests in this run never land in it.
    day = datetime(2031, 7, 4, 23, 59, 30, tzinfo=UTC)
    events: list[Event] = [
        *(UserDeleted(user_id=f"u{i}", occurred_at=day) for i in range(3)),
        CreditsChanged(
            user_id="u1", delta=-1, balance=4, reason="spend", entry_id="e1", occurred_at=day
        ),
        UserDeleted(user_id="next-day", occurred_at=day + timedelta(minutes=1)),
    ]
    await publish_events(amqp_url, [*events, events[0]])  # the first one delivered twice

    async with httpx.AsyncClient(base_url=metrics.base_url) as http:

        async def next_day_counted() -> bool:
            body = (await http.get("/v1/rollups/daily/2031-07-05")).json()
            return body["events"] == {UserDeleted.NAME: 1}

        await eventually(next_day_counted, "the events to be counted")
        rollup = await http.get("/v1/rollups/daily/2031-07-04")
        assert rollup.status_code == 200
        assert rollup.json() == {
            "day": "2031-07-04",
            "events": {UserDeleted.NAME: 3, CreditsChanged.NAME: 1},
        }
        bad_day = await http.get("/v1/rollups/daily/2031-13-40")
        assert bad_day.status_code == 422
        assert bad_day.json()["error"] == "validation_error"
        exposed = (await http.get("/metrics")).text
    assert f'sonata_domain_events_total{{event="{CreditsChanged.NAME}"}} 1.0' in exposed
