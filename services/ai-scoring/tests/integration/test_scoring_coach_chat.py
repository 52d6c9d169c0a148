"""The coach's chat through the service as a process, the model a local server speaking
OpenAI's wire format (driven by the official `openai` client inside the service): a tool call
the model gets wrong is answered to the model and the chat goes on."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sonata_testing import JwksServer, ServiceProcess, SigningKey

sys.path.insert(0, str(Path(__file__).parent))

from scoring_live_support import connect, note_messages, premium_learner, recv, take_notes
from scoring_openai_double import FakeOpenAI, completion

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAI]:
    double = FakeOpenAI()
    yield double
    double.server.shutdown()


@pytest.fixture(scope="module")
def database() -> str:
    return f"scoring_chat_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def scoring(
    mongo_url: str,
    amqp_url: str,
    key: SigningKey,
    model: FakeOpenAI,
    database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    with JwksServer([key.jwk]) as jwks:
        env = {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": database,
            "AMQP_URL": amqp_url,
            "AUTH_JWKS_URL": jwks.url,
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": model.url,
            "OPENAI_MODEL": "coach-test",
            "OPENAI_TIMEOUT_S": "10",
        }
        service = ServiceProcess(
            "ai-scoring",
            "sonata_scoring.main:create_app",
            env,
            log_dir=tmp_path_factory.mktemp("scoring-chat"),
        )
        service.start()
        try:
            yield service
        finally:
            service.stop()


async def play(service: ServiceProcess, token: str, piece_id: str, notes: int) -> str:
    """A short live session over the WebSocket, finished: its performance id."""
    async with connect(service.port, token) as ws:
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": piece_id}))
        await recv(ws, "started")
        for seq, message in enumerate(note_messages(1, take_notes(notes)), start=1):
            await ws.send(message)
            await recv(ws, "judged", seq=seq)
        await ws.send(json.dumps({"type": "finish", "seq": notes + 1}))
        return str((await recv(ws, "finished"))["performance_id"])


def tool_call(name: str, arguments: str, n: int) -> dict[str, Any]:
    return {"id": f"call_{n}", "type": "function",
            "function": {"name": name, "arguments": arguments}}  # fmt: skip


def tool_results(model: FakeOpenAI) -> list[dict[str, Any]]:
    """What the service told the model its tools answered, in the last request."""
    return [json.loads(m["content"]) for m in model.requests[-1]["messages"] if m["role"] == "tool"]


async def test_a_null_tool_argument_is_an_error_for_the_model_not_a_500(
    scoring: ServiceProcess, key: SigningKey, model: FakeOpenAI, amqp_url: str,
    mongo_url: str, database: str,
) -> None:  # fmt: skip
    token, piece_id = await premium_learner(key, amqp_url, mongo_url, database)
    performance_id = await play(scoring, token, piece_id, notes=4)
    model.script = [
        (200, completion(None, [tool_call("list_my_performances", '{"limit": null}', 1)])),
        (200, completion(None, [tool_call("list_my_performances", '{"limit": 2}', 2)])),
        (200, completion("One take so far: keep going.")),
    ]
    async with httpx.AsyncClient(base_url=scoring.base_url, timeout=20) as http:
        r = await http.post(
            "/v1/coach/chat",
            json={"message": "how am I doing?"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["answer"], body["source"]) == ("One take so far: keep going.", "model")
    assert body["tools_called"] == ["list_my_performances", "list_my_performances"]
    first, second = tool_results(model)
    assert first["error"].startswith("bad arguments for list_my_performances: limit:")
    assert [p["performance_id"] for p in second["performances"]] == [performance_id]
