"""One correlation id from an HTTP request to every log line of the work it causes.

auth, notifications and metrics run as real processes logging JSON lines, with an SMTP sink
for notifications. A signup carries an `X-Request-ID`; that id must come back on the
response, sit in the published event (body, AMQP correlation id and `x-correlation-id`
header), and appear on auth's log line publishing the event and on the log lines of each
consumer applying it. One hop further: the verification email notifications sends because
of that signup is logged under the same id, and so are the `notification_sent` event it
publishes and metrics applying that event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import aio_pika
import httpx
import pytest
from auth_fleet_support import start_auth, stop_and_check_log
from sonata_testing import RabbitVhost, ServiceProcess, eventually
from sonata_testing.smtp_sink import SmtpSink

pytestmark = pytest.mark.fleet

REGISTERED = "auth.user_registered.v1"
SENT = "notifications.notification_sent.v1"


@pytest.fixture(scope="module")
def amqp_url() -> Iterator[str]:
    """A vhost of this module's own: the session's `metrics` queue (bound to `#`) may hold
    every event earlier suites published, which a fresh consumer would have to work through."""
    with RabbitVhost("sonata-corr") as vhost:
        yield vhost.url


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def fleet(
    mongo_url: str, amqp_url: str, smtp: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    logs = tmp_path_factory.mktemp("correlation-logs")
    auth = start_auth(mongo_url, amqp_url, {"LOG_LEVEL": "INFO"})
    common = {
        "ENVIRONMENT": "test",
        "MONGODB_URL": mongo_url,
        "AMQP_URL": amqp_url,
        "AUTH_JWKS_URL": f"{auth.base_url}/.well-known/jwks.json",
        "LOG_LEVEL": "INFO",
    }
    mail = {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "DISPATCH_POLL_INTERVAL_S": "0.1"}
    consumers = {
        name: ServiceProcess(
            name,
            app,
            common | own | {"MONGODB_DB": f"{name}_{uuid.uuid4().hex[:8]}"},
            log_dir=logs,
        )
        for name, app, own in (
            ("notifications", "sonata_notifications.main:create_app", mail),
            ("metrics", "sonata_metrics.main:create_app", {}),
        )
    }
    started: list[ServiceProcess] = []
    try:
        for proc in consumers.values():
            started.append(proc.start(timeout=120))
        yield {"auth": auth, **consumers}
    finally:
        for proc in started:
            proc.stop()
        stop_and_check_log(auth)


def log_lines(proc: ServiceProcess) -> list[dict[str, Any]]:
    lines = []
    for raw in proc.log_path.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue  # uvicorn's own start-up lines are plain text
        if isinstance(line, dict):
            lines.append(line)
    return lines


def lines_with(proc: ServiceProcess, correlation_id: str) -> list[str]:
    return [
        str(line.get("message"))
        for line in log_lines(proc)
        if line.get("correlation_id") == correlation_id
    ]


async def test_one_request_id_follows_a_signup_through_the_bus_into_every_log(
    fleet: dict[str, ServiceProcess], amqp_url: str
) -> None:
    correlation_id = f"signup-{uuid.uuid4().hex}"
    email = f"corr-{uuid.uuid4().hex[:8]}@example.com"
    seen: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "domain-events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        tap = await channel.declare_queue(exclusive=True, auto_delete=True)
        await tap.bind(exchange, REGISTERED)

        async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append(message)

        await tap.consume(keep, no_ack=True)

        async with httpx.AsyncClient(timeout=30) as http:
            signup = await http.post(
                f"{fleet['auth'].base_url}/v1/signup",
                json={"email": email, "password": "a-Long-pass-4821"},
                headers={"X-Request-ID": correlation_id},
            )
        assert signup.status_code == 202, signup.text
        assert signup.headers["x-request-id"] == correlation_id

        def ours() -> list[aio_pika.abc.AbstractIncomingMessage]:
            return [m for m in seen if json.loads(m.body).get("email") == email]

        async def published() -> bool:
            return bool(ours())

        await eventually(published, f"{REGISTERED} for the signup")
        (message,) = ours()
        assert message.correlation_id == correlation_id
        assert (message.headers or {}).get("x-correlation-id") == correlation_id
        assert json.loads(message.body)["correlation_id"] == correlation_id

    event_id = json.loads(message.body)["id"]

    async def every_log_has_it() -> bool:
        return all(
            any(event_id in text for text in lines_with(fleet[name], correlation_id))
            for name in ("auth", "notifications", "metrics")
        )

    await eventually(every_log_has_it, "the correlation id in every service's log", within=60)
    assert f"published {REGISTERED} {event_id}" in lines_with(fleet["auth"], correlation_id)
    for consumer in ("notifications", "metrics"):
        applied = lines_with(fleet[consumer], correlation_id)
        assert f"applied {REGISTERED} {event_id}" in applied, (consumer, applied)
        line = next(x for x in log_lines(fleet[consumer]) if x.get("message") == applied[0])
        assert line["service"] == consumer


async def test_the_id_follows_the_email_it_causes_through_a_second_event_into_metrics(
    fleet: dict[str, ServiceProcess], smtp: SmtpSink
) -> None:
    """HTTP -> auth -> (its events) -> notifications sends the emails -> (notification_sent)
    -> metrics: every hop logs under the request's id."""
    correlation_id = f"two-hops-{uuid.uuid4().hex}"
    email = f"hops-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(timeout=30) as http:
        signup = await http.post(
            f"{fleet['auth'].base_url}/v1/signup",
            json={"email": email, "password": "a-Long-pass-4821"},
            headers={"X-Request-ID": correlation_id},
        )
    assert signup.status_code == 202, signup.text

    def published_sent() -> list[str]:
        prefix = f"published {SENT} "
        lines = lines_with(fleet["notifications"], correlation_id)
        return [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]

    async def metrics_applied_it() -> bool:
        ids = published_sent()
        applied = lines_with(fleet["metrics"], correlation_id)
        return bool(ids) and all(f"applied {SENT} {i}" in applied for i in ids)

    await eventually(metrics_applied_it, f"metrics to apply {SENT} under the id", within=60)
    # every email the signup caused (verification, welcome) was sent and published under it
    mails = smtp.received(to=email)
    assert mails
    notified = lines_with(fleet["notifications"], correlation_id)
    sends = [line for line in notified if line.startswith("sent ") and "on email" in line]
    assert len(sends) == len(mails) == len(published_sent()), notified
