"""The coach's language model through the official `openai` client (Chat Completions with
function tools and a JSON-schema response), pointed at OpenAI or any compatible server."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
from pydantic import ValidationError

from sonata_scoring.domain.coach import Feedback
from sonata_scoring.service_layer.coach import (
    TOOL_SPECS,
    ModelFailed,
    Tools,
    Turn,
    Usage,
    call_tool,
)

SYSTEM = (
    "You are a piano teacher. Use ONLY the measured facts you are given or fetch with the "
    "tools; never invent bars, notes or numbers. Name bar numbers. Be warm and specific."
)
MAX_TOOL_ROUNDS = 4
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": spec.description,
            "parameters": spec.args.model_json_schema(),
        },
    }
    for name, spec in TOOL_SPECS.items()
]


class OpenAICoach:
    def __init__(
        self,
        api_key: str,
        base_url: str | None,
        model: str,
        timeout_s: float,
        cost_in_per_mtok: float,
        cost_out_per_mtok: float,
    ) -> None:
        # no hidden retries: a slow or refusing model falls back to the deterministic coach
        self.client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
        )
        self.model = model
        self.cost = (cost_in_per_mtok, cost_out_per_mtok)

    def _usage(self, response: Any, started: float, prior: Usage | None = None) -> Usage:
        u = response.usage
        tin = (u.prompt_tokens if u else 0) + (prior.input_tokens if prior else 0)
        tout = (u.completion_tokens if u else 0) + (prior.output_tokens if prior else 0)
        return Usage(
            model=self.model,
            input_tokens=tin,
            output_tokens=tout,
            latency_ms=(time.perf_counter() - started) * 1000,
            cost_usd=(tin * self.cost[0] + tout * self.cost[1]) / 1e6,
        )

    async def _create(self, **kwargs: Any) -> Any:
        try:
            return await self.client.chat.completions.create(model=self.model, **kwargs)
        except openai.APITimeoutError:
            raise ModelFailed("timeout") from None
        except openai.RateLimitError:
            raise ModelFailed("rate_limited") from None
        except openai.APIStatusError as exc:
            raise ModelFailed(f"http_{exc.status_code}") from None
        except openai.APIError:
            raise ModelFailed("unreachable") from None

    async def feedback(self, facts: dict[str, Any]) -> tuple[Feedback, Usage]:
        started = time.perf_counter()
        response = await self._create(
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Feedback on this performance:\n" + json.dumps(facts)},
            ],
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "feedback",
                    "schema": Feedback.model_json_schema(),
                    "strict": False,
                },
            },
        )
        usage = self._usage(response, started)
        try:
            content = response.choices[0].message.content or ""
            return Feedback.model_validate_json(content), usage
        except (ValidationError, IndexError, AttributeError):
            raise ModelFailed("malformed_output", usage) from None

    async def chat(
        self,
        question: str,
        history: list[Turn],
        focus: dict[str, Any] | None,
        tools: Tools,
    ) -> tuple[str, list[str], Usage]:
        started = time.perf_counter()
        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
        if focus is not None:
            messages.append(
                {
                    "role": "system",
                    "content": "The learner asks about this performance (measured facts):\n"
                    + json.dumps(focus),
                }
            )
        messages += [{"role": t.role, "content": t.content} for t in history]
        messages.append({"role": "user", "content": question})
        called: list[str] = []
        usage: Usage | None = None
        for _ in range(MAX_TOOL_ROUNDS):
            response = await self._create(messages=messages, tools=TOOLS)
            usage = self._usage(response, started, usage)
            try:
                message = response.choices[0].message
            except (IndexError, AttributeError):
                raise ModelFailed("malformed_output", usage) from None
            if not message.tool_calls:
                if not message.content:
                    raise ModelFailed("malformed_output", usage)
                return message.content, called, usage
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                fn = getattr(call, "function", None)  # a custom (non-function) tool call has none
                name = str(getattr(fn, "name", "") or "")
                result = await call_tool(tools, name, getattr(fn, "arguments", None))
                called.append(name)
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
                )
        raise ModelFailed("too_many_tool_rounds", usage)
