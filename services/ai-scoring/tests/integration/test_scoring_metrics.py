"""What an operator reads on ai-scoring's /metrics: a live session played over the real
WebSocket counts its notes and times each judgement; a coach answer from the model (a local
server speaking OpenAI's wire format) adds the tokens and cost it reported, and a fallback is
timed as the deterministic backend."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sonata_testing import JwksServer, ServiceProcess, SigningKey

sys.path.insert(0, str(Path(__file__).parent))

from scoring_live_support import connect, note_messages, premium_learner, recv, take_notes
from scoring_openai_double import FakeOpenAI, completion

pytestmark = pytest.mark.integration

WORDED = {
    "strengths": ["An even scale"],
    "improve": [{"text": "Bar 2 was rushed", "first_bar": 2, "last_bar": 2}],
    "tips": ["Count out loud"],
    "encouragement": "Well played!",
    "drill": {"first_bar": 1, "last_bar": 2, "hands": "both", "tempo_percent": 80,
              "target": "even quarters", "target_accuracy": 0.9, "repetitions": 3},
}  # fmt: skip
COST_IN, COST_OUT = 0.40, 1.60  # USD per million tokens, as configured below


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
    return f"scoring_metrics_{uuid.uuid4().hex[:8]}"


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
            "OPENAI_INPUT_COST_PER_MTOK": str(COST_IN),
            "OPENAI_OUTPUT_COST_PER_MTOK": str(COST_OUT),
        }
        service = ServiceProcess(
            "ai-scoring",
            "sonata_scoring.main:create_app",
            env,
            log_dir=tmp_path_factory.mktemp("scoring-metrics"),
        )
        service.start()
        try:
            yield service
        finally:
            service.stop()


async def samples(service: ServiceProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on /metrics, by name and labels."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{service.base_url}/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: dict[Any, float], name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
async def learner(
    scoring: ServiceProcess, key: SigningKey, amqp_url: str, mongo_url: str, database: str
) -> tuple[str, str]:
    return await premium_learner(key, amqp_url, mongo_url, database)


async def play(service: ServiceProcess, token: str, piece_id: str, notes: int) -> str:
    """One live session over the WebSocket: the first `notes` notes of a real take, one message
    each, each answered; then finish; the performance id."""
    async with connect(service.port, token) as ws:
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": piece_id}))
        await recv(ws, "started")
        for seq, message in enumerate(note_messages(1, take_notes(notes)), start=1):
            await ws.send(message)
            await recv(ws, "judged", seq=seq)
        await ws.send(json.dumps({"type": "finish", "seq": notes + 1}))
        return str((await recv(ws, "finished"))["performance_id"])


async def test_a_live_session_counts_its_notes_and_times_each_judgement(
    scoring: ServiceProcess, learner: tuple[str, str]
) -> None:
    token, piece_id = learner
    before = await samples(scoring)
    notes = take_notes(8)
    async with connect(scoring.port, token) as ws:
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": piece_id}))
        await recv(ws, "started")
        for seq, message in enumerate(note_messages(1, notes[:5]), start=1):
            await ws.send(message)
            await recv(ws, "judged", seq=seq)
        # three note-ons in one message (a chord, as the bridge batches them), then the offs
        chord = [{"t": float(n["onset_s"]), "kind": "on", "pitch": int(n["pitch"]),
                  "velocity": 70} for n in notes[5:]]  # fmt: skip
        offs = [{"t": float(n["offset_s"]) + 0.5, "kind": "off", "pitch": int(n["pitch"])}
                for n in notes[5:]]  # fmt: skip
        await ws.send(json.dumps({"type": "notes", "seq": 6, "events": chord}))
        await recv(ws, "judged", seq=6)
        await ws.send(json.dumps({"type": "notes", "seq": 7, "events": offs}))
        await recv(ws, "judged", seq=7)
        await ws.send(json.dumps({"type": "finish", "seq": 8}))
        await recv(ws, "finished")
    after = await samples(scoring)

    def rose(name: str) -> float:
        return value(after, name) - value(before, name)

    assert rose("sonata_engine_notes_total") == 8  # note-ons judged, not the note-offs
    # one observation per note judged: the chord's message counts three times, the offs none
    assert rose("sonata_engine_judgement_seconds_count") == 8
    assert rose("sonata_engine_judgement_seconds_sum") > 0
    # buckets fine enough for a sub-millisecond judgement, wide enough for a slow one
    bounds = {
        dict(labels)["le"]
        for name, labels in after
        if name == "sonata_engine_judgement_seconds_bucket"
    }
    assert {"5e-05", "0.0005", "0.005", "0.05", "+Inf"} <= bounds
    assert value(after, "sonata_ws_live_sessions") == 0  # the finished one left


async def test_coach_tokens_and_cost_rise_by_what_the_model_reported(
    scoring: ServiceProcess, learner: tuple[str, str], model: FakeOpenAI
) -> None:
    token, piece_id = learner
    performance_id = await play(scoring, token, piece_id, notes=3)
    headers = {"Authorization": f"Bearer {token}"}
    before = await samples(scoring)
    reply = completion(json.dumps(WORDED))
    reply["usage"] = {"prompt_tokens": 1234, "completion_tokens": 321, "total_tokens": 1555}
    model.script = [(200, reply)]
    async with httpx.AsyncClient(base_url=scoring.base_url, timeout=20) as http:
        worded = await http.get(f"/v1/performances/{performance_id}/coach", headers=headers)
        assert worded.status_code == 200, worded.text
        assert worded.json()["source"] == "model"
        middle = await samples(scoring)
        model.script = [(500, {"error": {"message": "boom", "type": "server_error"}})]
        fallback = await http.get(f"/v1/performances/{performance_id}/coach", headers=headers)
        assert fallback.json()["fallback_reason"] == "http_500"
    after = await samples(scoring)

    def rose(a: dict[Any, float], b: dict[Any, float], name: str, **labels: str) -> float:
        return value(b, name, **labels) - value(a, name, **labels)

    assert rose(before, middle, "sonata_coach_tokens_total", kind="input") == 1234
    assert rose(before, middle, "sonata_coach_tokens_total", kind="output") == 321
    assert rose(before, middle, "sonata_coach_cost_usd_total") == pytest.approx(
        (1234 * COST_IN + 321 * COST_OUT) / 1e6
    )
    timed = "sonata_coach_request_seconds_count"
    assert rose(before, middle, timed, backend="openai") == 1
    assert rose(before, middle, timed, backend="deterministic") == 0
    # the failed call reported no usage: nothing more spent, and the answer was the fallback's
    assert rose(middle, after, "sonata_coach_tokens_total", kind="input") == 0
    assert rose(middle, after, "sonata_coach_cost_usd_total") == 0
    assert rose(middle, after, timed, backend="deterministic") == 1
    assert rose(middle, after, timed, backend="openai") == 0
