"""The coach's use cases: feedback on one performance, and a chat about the learner's own
practice. A language model words it when one is configured and the user's budget allows; the
deterministic coach answers otherwise, and whenever the model fails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sonata_scoring.domain.coach import Feedback, deterministic_feedback


@dataclass(frozen=True, slots=True)
class Usage:
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    cost_usd: float


class ModelFailed(Exception):  # noqa: N818 - an outcome the caller falls back from
    def __init__(self, reason: str, usage: Usage | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage


class UsageLedger(Protocol):
    async def spent_since(self, user_id: str, since: datetime) -> float: ...

    async def record(
        self, user_id: str, purpose: str, usage: Usage | None, outcome: str, at: datetime
    ) -> None: ...


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListPerformancesArgs(_Args):
    limit: int = Field(5, ge=1, le=20)


class GetPerformanceArgs(_Args):
    performance_id: str = Field(min_length=1, max_length=64)


class ListSessionsArgs(_Args):
    limit: int = Field(10, ge=1, le=20)


class NoArgs(_Args):
    pass


class Tools(Protocol):
    """What the chat model may read: only the asking user's own records."""

    async def list_my_performances(self, args: ListPerformancesArgs) -> dict[str, Any]: ...

    async def get_performance(self, args: GetPerformanceArgs) -> dict[str, Any]: ...

    async def get_progress(self, args: NoArgs) -> dict[str, Any]: ...

    async def list_my_sessions(self, args: ListSessionsArgs) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


class Conversations(Protocol):
    """The chat's memory, one conversation per learner and performance (or none: general
    questions), holding the last few exchanges."""

    async def turns(self, user_id: str, performance_id: str | None) -> list[Turn]: ...

    async def append(
        self, user_id: str, performance_id: str | None, turns: list[Turn], at: datetime
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ToolSpec:
    description: str
    args: type[_Args]


# The model's function tools; their JSON schemas are the argument models' own.
TOOL_SPECS: dict[str, ToolSpec] = {
    "list_my_performances": ToolSpec(
        "The learner's own recent scored performances, newest first.", ListPerformancesArgs
    ),
    "get_performance": ToolSpec(
        "One of the learner's performances: scores, findings, per-bar facts.", GetPerformanceArgs
    ),
    "get_progress": ToolSpec("The learner's overall scores over time, per piece.", NoArgs),
    "list_my_sessions": ToolSpec(
        "The learner's own recent practice sessions, newest first: piece, bars, hands, tempo "
        "%, whether finished, and the performance each one produced.",
        ListSessionsArgs,
    ),
}


def _bad_arguments(name: str, exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    ]
    return f"bad arguments for {name}: " + "; ".join(problems)


async def call_tool(tools: Tools, name: str, raw_arguments: str | None) -> dict[str, Any]:
    """One tool call of the model, its arguments checked against the tool's schema first. A
    call that does not fit (unknown tool, not JSON, a wrong or missing field) is answered with
    an error the model can read and correct, never an exception."""
    spec = TOOL_SPECS.get(name)
    if spec is None:
        return {"error": f"no tool {name!r}; the tools are {', '.join(TOOL_SPECS)}"}
    try:
        args = spec.args.model_validate_json(raw_arguments or "{}")
    except ValidationError as exc:
        return {"error": _bad_arguments(name, exc)}
    if isinstance(args, ListPerformancesArgs):
        return await tools.list_my_performances(args)
    if isinstance(args, GetPerformanceArgs):
        return await tools.get_performance(args)
    if isinstance(args, ListSessionsArgs):
        return await tools.list_my_sessions(args)
    return await tools.get_progress(NoArgs())


class LanguageModel(Protocol):
    async def feedback(self, facts: dict[str, Any]) -> tuple[Feedback, Usage]: ...

    async def chat(
        self,
        question: str,
        history: list[Turn],
        focus: dict[str, Any] | None,
        tools: Tools,
    ) -> tuple[str, list[str], Usage]:
        """`history`: the conversation's earlier turns, oldest first; `focus`: the measured
        facts of the performance the question is about, if it is about one."""
        ...


@dataclass(frozen=True, slots=True)
class CoachAnswer:
    source: str  # "model" or "deterministic"
    fallback_reason: str | None


def facts_of(report: dict[str, Any]) -> dict[str, Any]:
    """What the model is shown: the measured facts, never the raw note table."""
    return {
        "overall": report.get("overall"),
        "subscores": report.get("subscores"),
        "summary": report.get("summary"),
        "findings": report.get("findings", []),
        "options": report.get("options"),
        "bars": [
            {k: b.get(k) for k in ("number", "accuracy", "timing_ms", "tempo_bpm")}
            for b in report.get("bars", [])
        ],
    }


async def coach_feedback(
    user_id: str,
    report: dict[str, Any],
    model: LanguageModel | None,
    ledger: UsageLedger,
    budget_usd: float,
    now: datetime,
    day_start: datetime,
) -> tuple[Feedback, CoachAnswer]:
    fallback = deterministic_feedback(report)
    if model is None:
        return fallback, CoachAnswer("deterministic", None)
    if await ledger.spent_since(user_id, day_start) >= budget_usd:
        await ledger.record(user_id, "feedback", None, "over_budget", now)
        return fallback, CoachAnswer("deterministic", "over_budget")
    try:
        worded, usage = await model.feedback(facts_of(report))
    except ModelFailed as exc:
        await ledger.record(user_id, "feedback", exc.usage, exc.reason, now)
        return fallback, CoachAnswer("deterministic", exc.reason)
    await ledger.record(user_id, "feedback", usage, "ok", now)
    # the drill is a measured fact the client applies as is: the model words, it does not pick
    return worded.model_copy(update={"drill": fallback.drill}), CoachAnswer("model", None)


@dataclass(frozen=True, slots=True)
class Focus:
    """The performance a chat is about: its id and the report's measured facts."""

    performance_id: str
    piece_id: str
    report: dict[str, Any]

    def facts(self) -> dict[str, Any]:
        return {
            "performance_id": self.performance_id,
            "piece_id": self.piece_id,
            "report": facts_of(self.report),
        }


async def coach_chat(
    user_id: str,
    question: str,
    focus: Focus | None,
    model: LanguageModel | None,
    tools: Tools,
    conversations: Conversations,
    ledger: UsageLedger,
    budget_usd: float,
    now: datetime,
    day_start: datetime,
) -> tuple[str, list[str], CoachAnswer]:
    """(answer, tools called, how it was answered). The question and the answer join the
    conversation of this learner and performance, so a follow-up sees them."""
    about = focus.performance_id if focus else None
    history = await conversations.turns(user_id, about)
    answer, called, how = await _chat(
        user_id, question, history, focus, model, tools, ledger, budget_usd, now, day_start
    )
    await conversations.append(
        user_id, about, [Turn("user", question), Turn("assistant", answer)], now
    )
    return answer, called, how


async def _chat(
    user_id: str,
    question: str,
    history: list[Turn],
    focus: Focus | None,
    model: LanguageModel | None,
    tools: Tools,
    ledger: UsageLedger,
    budget_usd: float,
    now: datetime,
    day_start: datetime,
) -> tuple[str, list[str], CoachAnswer]:
    reason: str | None = None
    if model is not None and await ledger.spent_since(user_id, day_start) < budget_usd:
        try:
            answer, called, usage = await model.chat(
                question, history, focus.facts() if focus else None, tools
            )
        except ModelFailed as exc:
            await ledger.record(user_id, "chat", exc.usage, exc.reason, now)
            reason = exc.reason
        else:
            await ledger.record(user_id, "chat", usage, "ok", now)
            return answer, called, CoachAnswer("model", None)
    elif model is not None:
        reason = "over_budget"
        await ledger.record(user_id, "chat", None, reason, now)
    if focus is not None:
        return (
            _deterministic_answer(focus.report, "This take"),
            [],
            CoachAnswer("deterministic", reason),
        )
    latest = await tools.list_my_performances(ListPerformancesArgs(limit=1))
    rows = latest.get("performances", [])
    if not rows:
        return (
            "Play a piece first: once a performance is scored I can say what to practise.",
            ["list_my_performances"],
            CoachAnswer("deterministic", reason),
        )
    last = await tools.get_performance(GetPerformanceArgs(performance_id=rows[0]["performance_id"]))
    return (
        _deterministic_answer(last.get("report", {}), "Your latest take"),
        ["list_my_performances", "get_performance"],
        CoachAnswer("deterministic", reason),
    )


def _deterministic_answer(report: dict[str, Any], which: str) -> str:
    fb = deterministic_feedback(report)
    lines = [f"{which} scored {float(report.get('overall') or 0):.0f}."]
    lines += [f"Work on: {i.text} (bars {i.first_bar}-{i.last_bar})." for i in fb.improve]
    d = fb.drill
    lines.append(
        f"This week: loop bars {d.first_bar}-{d.last_bar}, {d.hands} hands, at {d.tempo_percent}%"
        f" tempo until {d.target}."
    )
    return " ".join(lines)
