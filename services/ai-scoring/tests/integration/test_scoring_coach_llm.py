"""The coach's model adapter driven through the real `openai` client against a local server
speaking the Chat Completions wire format: structured output, tool calls, and every failure
falling back to the deterministic coach, with each call in the usage ledger."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sonata_scoring.adapters.llm import OpenAICoach
from sonata_scoring.domain.coach import deterministic_feedback
from sonata_scoring.service_layer.coach import (
    GetPerformanceArgs,
    ListPerformancesArgs,
    ListSessionsArgs,
    NoArgs,
    Turn,
    Usage,
    coach_chat,
    coach_feedback,
)

sys.path.insert(0, str(Path(__file__).parent))

from scoring_openai_double import FakeOpenAI, completion

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
DAY = NOW.replace(hour=0)
REPORT: dict[str, Any] = {
    "overall": 71.0,
    "subscores": {"notes": 90.0, "rhythm": 60.0},
    "summary": {"accuracy": 0.9},
    "options": {"hands": "both", "tempo_percent": 100.0},
    "bars": [{"number": n, "expected": 4, "accuracy": 1.0} for n in range(1, 9)],
    "findings": [{"text": "missed 3 notes in bar 7", "kind": "missed", "first_bar": 7,
                  "last_bar": 7, "impact": 3.0, "facts": {"notes": 3}}],
}  # fmt: skip
WORDED = {
    "strengths": ["Clean right notes in bars 1-6"],
    "improve": [{"text": "Bar 7 lost three notes", "first_bar": 7, "last_bar": 7}],
    "tips": ["Hands apart in bar 7"],
    "encouragement": "Nearly there!",
    "drill": {"first_bar": 1, "last_bar": 8, "hands": "both", "tempo_percent": 150,
              "target": "anything", "target_accuracy": 0.5, "repetitions": 1},
}  # fmt: skip


class Ledger:
    def __init__(self, spent: float = 0.0) -> None:
        self.spent = spent
        self.rows: list[tuple[str, str, Usage | None, str]] = []

    async def spent_since(self, user_id: str, since: datetime) -> float:
        return self.spent

    async def record(
        self, user_id: str, purpose: str, usage: Usage | None, outcome: str, at: datetime
    ) -> None:
        self.rows.append((user_id, purpose, usage, outcome))


class Records:
    """Tools fenced to one user, as the real ones are."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def list_my_performances(self, args: ListPerformancesArgs) -> dict[str, Any]:
        self.calls.append(("list_my_performances", args))
        return {"performances": [{"performance_id": "mine-1", "overall": 71.0}][: args.limit]}

    async def get_performance(self, args: GetPerformanceArgs) -> dict[str, Any]:
        self.calls.append(("get_performance", args))
        if args.performance_id == "mine-1":
            return {"performance_id": "mine-1", "report": REPORT}
        return {"error": "no such performance of yours"}

    async def get_progress(self, args: NoArgs) -> dict[str, Any]:
        self.calls.append(("get_progress", args))
        return {"overall_by_piece": {"p": [71.0]}}

    async def list_my_sessions(self, args: ListSessionsArgs) -> dict[str, Any]:
        self.calls.append(("list_my_sessions", args))
        return {"sessions": []}


class Memory:
    """Conversations kept in a dict, as the Mongo ones are kept per user and performance."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, str | None], list[Turn]] = {}

    async def turns(self, user_id: str, performance_id: str | None) -> list[Turn]:
        return list(self.kept.get((user_id, performance_id), []))

    async def append(
        self, user_id: str, performance_id: str | None, turns: list[Turn], at: datetime
    ) -> None:
        self.kept.setdefault((user_id, performance_id), []).extend(turns)


def tool_call(name: str, arguments: str, n: int) -> dict[str, Any]:
    return {"id": f"call_{n}", "type": "function",
            "function": {"name": name, "arguments": arguments}}  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.server.shutdown()


def coach(server: FakeOpenAI, timeout: float = 5.0) -> OpenAICoach:
    return OpenAICoach("sk-test", server.url, "coach-test", timeout, 0.40, 1.60)


async def test_structured_feedback_is_worded_by_the_model_with_the_measured_drill(
    server: FakeOpenAI,
) -> None:
    server.script = [(200, completion(json.dumps(WORDED)))]
    ledger = Ledger()
    fb, how = await coach_feedback("u1", REPORT, coach(server), ledger, 0.5, NOW, DAY)
    assert (how.source, how.fallback_reason) == ("model", None)
    assert fb.improve[0].text == "Bar 7 lost three notes"
    assert fb.drill == deterministic_feedback(REPORT).drill  # not the model's 150 % loop
    sent = server.requests[-1]
    assert sent["response_format"]["type"] == "json_schema"
    assert "missed 3 notes in bar 7" in sent["messages"][1]["content"]
    (_, purpose, usage, outcome) = ledger.rows[0]
    assert (purpose, outcome) == ("feedback", "ok")
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (1000, 200)
    assert usage.cost_usd == pytest.approx((1000 * 0.40 + 200 * 1.60) / 1e6)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ((429, {"error": {"message": "slow down", "type": "rate_limit", "code": None}}),
         "rate_limited"),
        (("sleep", 1.5), "timeout"),
        ((200, completion("Sure! Here is some feedback")), "malformed_output"),
        ((500, {"error": {"message": "boom", "type": "server_error"}}), "http_500"),
    ],
)  # fmt: skip
async def test_every_failure_falls_back_to_the_same_structure(
    server: FakeOpenAI, script: tuple[Any, Any], reason: str
) -> None:
    server.script = [script]
    ledger = Ledger()
    fb, how = await coach_feedback("u1", REPORT, coach(server, 0.5), ledger, 0.5, NOW, DAY)
    assert (how.source, how.fallback_reason) == ("deterministic", reason)
    assert fb == deterministic_feedback(REPORT)
    assert [row[3] for row in ledger.rows] == [reason]


async def test_over_budget_never_calls_the_model(server: FakeOpenAI) -> None:
    before = len(server.requests)
    ledger = Ledger(spent=0.5)
    fb, how = await coach_feedback("u1", REPORT, coach(server), ledger, 0.5, NOW, DAY)
    assert how.fallback_reason == "over_budget"
    assert len(server.requests) == before
    assert fb == deterministic_feedback(REPORT)


async def test_chat_answers_with_tools_that_only_reach_the_users_own_records(
    server: FakeOpenAI,
) -> None:
    server.script = [
        (
            200,
            completion(None, [tool_call("get_performance", '{"performance_id": "theirs-9"}', 1)]),
        ),
        (200, completion(None, [tool_call("list_my_performances", '{"limit": 1}', 2)])),
        (200, completion("Bar 7: you missed 3 notes; loop it hands apart.")),
    ]
    records, ledger = Records(), Ledger()
    answer, called, how = await coach_chat(
        "u1", "why did I lose points in bar 7?", None, coach(server), records, Memory(), ledger,
        0.5, NOW, DAY,
    )  # fmt: skip
    assert answer.startswith("Bar 7")
    assert called == ["get_performance", "list_my_performances"]
    assert how.source == "model"
    tool_results = [m for m in server.requests[-1]["messages"] if m["role"] == "tool"]
    assert json.loads(tool_results[0]["content"]) == {"error": "no such performance of yours"}
    assert ledger.rows[0][2] is not None
    assert ledger.rows[0][2].input_tokens == 3000  # three rounds, summed


@pytest.mark.parametrize(
    ("name", "arguments", "complaint"),
    [
        ("list_my_performances", '{"limit": null}', "limit: Input should be a valid integer"),
        ("list_my_performances", '{"limit": 500}', "limit: Input should be less than or equal"),
        ("get_performance", "{}", "performance_id: Field required"),
        ("get_performance", '{"performance_id": "mine-1", "user_id": "u2"}',
         "user_id: Extra inputs are not permitted"),
        ("get_progress", "{not json", "Invalid JSON"),
        ("get_progress", "[1, 2]", "Input should be an object"),
        ("delete_everything", "{}", "no tool 'delete_everything'"),
    ],
)  # fmt: skip
async def test_a_bad_tool_call_is_told_to_the_model_and_the_chat_goes_on(
    server: FakeOpenAI, name: str, arguments: str, complaint: str
) -> None:
    server.script = [
        (200, completion(None, [tool_call(name, arguments, 1)])),
        (200, completion(None, [tool_call("list_my_performances", '{"limit": 1}', 2)])),
        (200, completion("Your latest take scored 71.")),
    ]
    records, ledger = Records(), Ledger()
    answer, called, how = await coach_chat(
        "u1", "how am I doing?", None, coach(server), records, Memory(), ledger, 0.5, NOW, DAY
    )
    assert (answer, how.source) == ("Your latest take scored 71.", "model")
    assert called == [name, "list_my_performances"]
    # the bad call never reached the records; the corrected one did
    assert [c[0] for c in records.calls] == ["list_my_performances"]
    tool_results = [m for m in server.requests[-1]["messages"] if m["role"] == "tool"]
    assert complaint in json.loads(tool_results[0]["content"])["error"]
    assert json.loads(tool_results[1]["content"])["performances"][0]["performance_id"] == "mine-1"


async def test_chat_without_a_model_answers_from_the_latest_report() -> None:
    records, ledger = Records(), Ledger()
    answer, called, how = await coach_chat(
        "u1", "what should I practise this week?", None, None, records, Memory(), ledger, 0.5,
        NOW, DAY,
    )  # fmt: skip
    assert how.source == "deterministic"
    assert "bar 7" in answer.lower() or "bars 7-7" in answer
    assert called == ["list_my_performances", "get_performance"]
