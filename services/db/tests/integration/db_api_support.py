"""What db's API tests share: the process with a JWKS of the test's own, tokens, an event
queue bound before the service starts, and a watch that no answer was a 5xx."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx
from sonata_contracts.payment import EntitlementsChanged, Limits
from sonata_testing import TokenFactory, eventually, publish_events


class Users:
    def __init__(self, tokens: TokenFactory) -> None:
        self.tokens = tokens

    def new(self, *roles: str) -> tuple[str, dict[str, str]]:
        user_id = f"u-{uuid.uuid4().hex[:10]}"
        token = self.tokens.sign(self.tokens.claims(sub=user_id, roles=roles or ("student",)))
        return user_id, {"Authorization": f"Bearer {token}"}


class Watch:
    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    async def __call__(self, response: httpx.Response) -> None:
        self.seen.append((response.status_code, f"{response.request.method} {response.url.path}"))

    def server_errors(self) -> list[tuple[int, str]]:
        return [s for s in self.seen if s[0] >= 500]


class Events:
    """Drains a queue bound to ``db.#`` into a list, so tests can wait for what db published."""

    def __init__(self, queue: aio_pika.abc.AbstractQueue) -> None:
        self.queue = queue
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def _drain(self) -> None:
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            self.seen.append((message.type or "", json.loads(message.body)))

    async def wait_for(self, name: str, **match: Any) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def arrived() -> bool:
            await self._drain()
            found[:] = [
                b
                for n, b in self.seen
                if n == name and all(b.get(k) == v for k, v in match.items())
            ]
            return bool(found)

        await eventually(arrived, f"{name} with {match}", within=20)
        return found[-1]

    async def all(self, name: str, **match: Any) -> list[dict[str, Any]]:
        await self._drain()
        return [
            b for n, b in self.seen if n == name and all(b.get(k) == v for k, v in match.items())
        ]


async def grant(
    amqp_url: str, user_id: str, plan: str, *, seats: int = 0, full_reports: bool = True
) -> None:
    """payment's decision for ``user_id``, sent over the broker as payment sends it."""
    limits = Limits(
        scored_sessions_per_day=None, coach=True, full_reports=full_reports, teacher_seats=seats
    )
    now = datetime.now(UTC)
    event = EntitlementsChanged(
        user_id=user_id, plan=plan, limits=limits, valid_until=None, version=1, as_of=now
    )
    await publish_events(amqp_url, [event])


async def accept_once_seated(
    http: httpx.AsyncClient, code: str, headers: dict[str, str]
) -> httpx.Response:
    """Accept an invite, waiting out the moment before db has applied the teacher's plan."""
    answers: list[httpx.Response] = []

    async def accepted() -> bool:
        r = await http.post(f"/v1/invites/{code}/accept", headers=headers)
        answers.append(r)
        return r.status_code != 403

    await eventually(accepted, "the teacher's plan applied")
    return answers[-1]


async def history_total(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    r = await http.get("/v1/me/performances", headers=headers)
    assert r.status_code == 200, r.text
    total: int = r.json()["total"]
    return total


async def play(
    http: httpx.AsyncClient, library_amqp_url: str, headers: dict[str, str], events: list[Any]
) -> None:
    before = await history_total(http, headers)
    await publish_events(library_amqp_url, events)
    fresh = len({e.performance_id for e in events})

    async def recorded() -> bool:
        return await history_total(http, headers) == before + fresh

    await eventually(recorded, f"{fresh} performances recorded")
