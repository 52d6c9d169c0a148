"""What the auth fleet tests share: the auth process, a tap on the event exchange, 5xx watch."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aio_pika
import httpx
from sonata_testing import ServiceProcess

KEY_ENCRYPTION_SECRET = "fleet-test-key-encryption-secret-4f1c9a"
PASSWORD = "correct horse battery staple"


def start_auth(
    mongo_url: str, amqp_url: str, extra_env: Mapping[str, str] | None = None
) -> ServiceProcess:
    env = {
        "ENVIRONMENT": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": f"auth_fleet_{uuid.uuid4().hex[:8]}",
        "AMQP_URL": amqp_url,
        "KEY_ENCRYPTION_SECRET": KEY_ENCRYPTION_SECRET,
        "LOG_LEVEL": "WARNING",
        **dict(extra_env or {}),
    }
    return ServiceProcess("auth", "sonata_auth.main:create_app", env).start()


def stop_and_check_log(proc: ServiceProcess) -> None:
    """Stop the process; its log must show no unhandled error (the kit logs every 500)."""
    proc.stop()
    log = proc.log_path.read_text(errors="replace")
    assert "unhandled error" not in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]


class StatusWatch:
    """An httpx response hook: every status the suite saw, to prove none was a 5xx."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    async def __call__(self, response: httpx.Response) -> None:
        self.seen.append((response.status_code, f"{response.request.method} {response.url.path}"))

    def server_errors(self) -> list[tuple[int, str]]:
        return [s for s in self.seen if s[0] >= 500]


class EventTap:
    """A queue of the test's own bound to ``domain-events``: reads what auth publishes."""

    def __init__(self, amqp_url: str, binding: str = "auth.#") -> None:
        self.amqp_url = amqp_url
        self.binding = binding
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> EventTap:
        self._conn = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._conn.channel()
        exchange = await channel.declare_exchange(
            "domain-events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, self.binding)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.events.append((message.routing_key or "", json.loads(message.body)))
        self._arrived.set()

    async def __aexit__(self, *exc: object) -> None:
        await self._conn.close()

    async def wait_for(
        self,
        name: str,
        match: Callable[[dict[str, Any]], bool] = lambda body: True,
        within_s: float = 20.0,
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            for key, body in self.events:
                if key == name and match(body):
                    return body
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {name} event within {within_s}s; saw {self.events}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue


async def signup_verified(
    http: httpx.AsyncClient, tap: EventTap, base: str, email: str
) -> dict[str, Any]:
    """A verified account through the public API; returns the verification event."""
    r = await http.post(f"{base}/v1/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 202, r.text
    event = await tap.wait_for(
        "auth.email_verification_requested.v1", lambda b: b["email"] == email
    )
    r = await http.post(f"{base}/v1/email/verify", json={"token": event["token"]})
    assert r.status_code == 200, r.text
    return event


async def login(http: httpx.AsyncClient, base: str, email: str) -> dict[str, Any]:
    r = await http.post(f"{base}/v1/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "ok", body
    return body
