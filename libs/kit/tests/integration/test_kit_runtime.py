"""The app factory's runtime against real SecantusDB and RabbitMQ: readiness, a use case
writing state and its event in one transaction, the request id travelling into the event and
back out of a consumer's log context."""

import json
import uuid
from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest
from beanie import Document
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from sonata_contracts.auth import UserDeleted, UserRegistered
from sonata_kit import Conflict, RuntimeDep, ServiceSettings, create_service_app
from sonata_messaging import Transaction, declare_topology, get_correlation_id, on
from sonata_testing import eventually, publish_events

pytestmark = pytest.mark.integration

SERVICE = f"kit-runtime-{uuid.uuid4().hex[:6]}"
OBSERVER = f"{SERVICE}-observer"


class Member(Document):
    user_id: str
    email: str

    class Settings:
        name = "members"


class Signup(BaseModel):
    user_id: str
    email: str


router = APIRouter(prefix="/v1")


@router.post("/members", status_code=201)
async def sign_up(body: Signup, runtime: RuntimeDep) -> dict[str, str]:
    async def use_case(tx: Transaction) -> None:
        taken = await Member.find_one(Member.user_id == body.user_id, session=tx.session)
        if taken is not None:
            raise Conflict(f"{body.user_id} exists", code="member_exists")
        await Member(user_id=body.user_id, email=body.email).insert(session=tx.session)
        await tx.publish(
            UserRegistered(
                user_id=body.user_id,
                email=body.email,
                display_name=body.user_id,
                roles=["student"],
                locale="en",
                timezone="UTC",
            )
        )

    await runtime.transaction(use_case)
    return {"user_id": body.user_id}


seen_correlation: list[str | None] = []


async def forget(event: UserDeleted, tx: Transaction) -> None:
    seen_correlation.append(get_correlation_id())
    await Member.find(Member.user_id == event.user_id, session=tx.session).delete(
        session=tx.session
    )


@pytest.fixture
async def app(mongo_url: str, amqp_url: str) -> AsyncIterator[FastAPI]:
    settings = ServiceSettings(
        environment="test",
        mongodb_url=mongo_url,
        mongodb_db=f"kit_{uuid.uuid4().hex[:6]}",
        amqp_url=amqp_url,
    )
    application = create_service_app(
        settings,
        service=SERVICE,
        title="kit runtime",
        documents=[Member],
        routers=[router],
        handlers=[on(UserDeleted, forget)],
        publishes=True,
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def observed(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    queue = await declare_topology(channel, OBSERVER, [UserRegistered.NAME])
    try:
        yield queue
    finally:
        for name in (OBSERVER, f"{OBSERVER}.dead", SERVICE, f"{SERVICE}.dead"):
            await channel.queue_delete(name)
        await connection.close()


async def eventually_get(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    got: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def arrived() -> bool:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            got.append(message)
        return bool(got)

    await eventually(arrived, "a message on the observer queue")
    return got[0]


async def test_request_id_flows_from_http_into_the_event_and_out_of_the_consumer(
    app: FastAPI, observed: aio_pika.abc.AbstractQueue, amqp_url: str
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as http:

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready, "readiness")
        checks = (await http.get("/readyz")).json()["checks"]
        assert checks == {"mongodb": "ok", "amqp": "ok", "consumer": "ok"}

        created = await http.post(
            "/v1/members",
            json={"user_id": "ada", "email": "ada@example.org"},
            headers={"X-Request-ID": "req-signup-1"},
        )
        assert created.status_code == 201
        again = await http.post("/v1/members", json={"user_id": "ada", "email": "ada@example.org"})
        assert again.status_code == 409
        assert again.json() == {"error": "member_exists", "detail": "ada exists"}

        message = await eventually_get(observed)
        assert message.type == UserRegistered.NAME
        assert message.correlation_id == "req-signup-1"
        assert message.headers["x-correlation-id"] == "req-signup-1"
        assert json.loads(message.body)["correlation_id"] == "req-signup-1"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert await observed.get(no_ack=True, fail=False) is None  # the 409 published nothing

        await publish_events(amqp_url, [UserDeleted(user_id="ada", correlation_id="req-delete-9")])

        async def forgotten() -> bool:
            return await Member.find(Member.user_id == "ada").count() == 0

        await eventually(forgotten, "the member to be deleted by the consumer")
        assert seen_correlation == ["req-delete-9"]
