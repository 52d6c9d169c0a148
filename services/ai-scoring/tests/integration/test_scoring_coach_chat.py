"""The coach's chat through the service as a process, the model a local server speaking
OpenAI's wire format (driven by the official `openai` client inside the service): a tool call
the model gets wrong is answered to the model and the chat goes on; follow-up questions see the
conversation's earlier turns (per performance, the last few only); and two learners with real
tokens: the second can neither read, chat about nor resume the first one's work."""

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
            "COACH_HISTORY_TURNS": "4",  # two exchanges
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


async def test_follow_ups_see_the_earlier_turns_of_that_performance_and_the_sessions_tool(
    scoring: ServiceProcess, key: SigningKey, model: FakeOpenAI, amqp_url: str,
    mongo_url: str, database: str,
) -> None:  # fmt: skip
    token, piece_id = await premium_learner(key, amqp_url, mongo_url, database)
    performance_id = await play(scoring, token, piece_id, notes=4)
    headers = {"Authorization": f"Bearer {token}"}

    async def ask(http: httpx.AsyncClient, question: str, about: str | None) -> list[Any]:
        """Ask; the conversation (role, text) the model was shown, and the facts it was given."""
        r = await http.post(
            "/v1/coach/chat", json={"message": question, "performance_id": about}, headers=headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["performance_id"] == about
        sent = model.requests[-1]["messages"]
        said = [
            (m["role"], m["content"])
            for m in sent
            if m["role"] in ("user", "assistant") and "tool_calls" not in m
        ]
        facts = [m["content"] for m in sent[1:] if m["role"] == "system"]
        return [said, facts]

    async with httpx.AsyncClient(base_url=scoring.base_url, timeout=20) as http:
        for n in (1, 2, 3):
            model.script = [(200, completion(f"A{n}"))]
            said, facts = await ask(http, f"Q{n}", performance_id)
        assert said == [("user", "Q1"), ("assistant", "A1"), ("user", "Q2"),
                        ("assistant", "A2"), ("user", "Q3")]  # fmt: skip
        shown = json.loads(facts[0].split("\n", 1)[1])
        assert shown["performance_id"] == performance_id
        assert set(shown["report"]) == {
            "overall",
            "subscores",
            "summary",
            "findings",
            "options",
            "bars",
        }  # measured facts, no note table
        model.script = [(200, completion("A4"))]
        said, _ = await ask(http, "Q4", performance_id)
        # bounded: the last two exchanges only
        assert said == [("user", "Q2"), ("assistant", "A2"), ("user", "Q3"),
                        ("assistant", "A3"), ("user", "Q4")]  # fmt: skip

        # a general question is another conversation; the model looks up the sessions
        model.script = [
            (200, completion(None, [tool_call("list_my_sessions", "{}", 1)])),
            (200, completion("You practised once, the whole piece at full tempo.")),
        ]
        said, facts = await ask(http, "what did I practise?", None)
        assert (said, facts) == ([("user", "what did I practise?")], [])
        (sessions,) = tool_results(model)
        (session,) = sessions["sessions"]
        assert (session["status"], session["performance_id"]) == ("finished", performance_id)
        assert (session["piece_id"], session["hands"], session["tempo_percent"]) == (
            piece_id,
            "both",
            100.0,
        )
        tools = {t["function"]["name"] for t in model.requests[-1]["tools"]}
        assert tools == {"list_my_performances", "get_performance", "get_progress",
                         "list_my_sessions"}  # fmt: skip


async def test_another_learner_cannot_read_chat_about_or_resume_a_learners_work(
    scoring: ServiceProcess, key: SigningKey, model: FakeOpenAI, amqp_url: str,
    mongo_url: str, database: str,
) -> None:  # fmt: skip
    alice, piece_id = await premium_learner(key, amqp_url, mongo_url, database)
    bob, _ = await premium_learner(key, amqp_url, mongo_url, database)
    performance_id = await play(scoring, alice, piece_id, notes=4)
    async with connect(scoring.port, alice) as ws:  # a live session Alice will come back to
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": piece_id}))
        live_id = (await recv(ws, "started"))["session_id"]
        for message in note_messages(1, take_notes(3)):
            await ws.send(message)
        await recv(ws, "ack", seq=3)
    as_bob = {"Authorization": f"Bearer {bob}"}
    async with httpx.AsyncClient(base_url=scoring.base_url, timeout=20) as http:
        for path in (
            f"/v1/performances/{performance_id}",
            f"/v1/performances/{performance_id}/coach",
        ):
            r = await http.get(path, headers=as_bob)
            assert (r.status_code, r.json()["error"]) == (404, "performance_not_found"), path
        r = await http.post(
            "/v1/coach/chat",
            json={"message": "how did it go?", "performance_id": performance_id},
            headers=as_bob,
        )
        assert (r.status_code, r.json()["error"]) == (404, "performance_not_found")
        # whatever the model asks for, Bob's tools read Bob's records only
        model.script = [
            (200, completion(None, [
                tool_call("get_performance", json.dumps({"performance_id": performance_id}), 1),
                tool_call("list_my_performances", "{}", 2),
                tool_call("list_my_sessions", "{}", 3),
                tool_call("get_progress", "{}", 4),
            ])),
            (200, completion("Nothing of yours yet.")),
        ]  # fmt: skip
        r = await http.post("/v1/coach/chat", json={"message": "show me alice's"}, headers=as_bob)
        assert r.status_code == 200, r.text
        assert tool_results(model) == [
            {"error": "no such performance of yours"},
            {"performances": []},
            {"sessions": []},
            {"overall_by_piece": {}},
        ]
        finished_id = (
            await http.get(
                f"/v1/performances/{performance_id}", headers={"Authorization": f"Bearer {alice}"}
            )
        ).json()["session_id"]
    for session_id in (live_id, finished_id):
        async with connect(scoring.port, bob) as ws:
            await ws.send(json.dumps({"type": "resume", "seq": 0, "session_id": session_id,
                                      "last_acked_seq": 0}))  # fmt: skip
            refused = json.loads(await ws.recv())
        # the same answer as for a session that never existed: nothing about Alice's leaks
        assert (refused["type"], refused["code"]) == ("refused", "unknown_session"), refused
        assert refused.get("performance_id") is None
    async with connect(scoring.port, alice) as ws:  # still Alice's, and all there
        await ws.send(json.dumps({"type": "resume", "seq": 0, "session_id": live_id,
                                  "last_acked_seq": 3}))  # fmt: skip
        assert (await recv(ws, "resumed"))["last_acked_seq"] == 3
