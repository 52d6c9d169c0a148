import asyncio
import gc
import logging
from datetime import UTC, datetime

from fastapi import FastAPI
from sonata_kit import Runtime, create_service_app

from sonata_scoring.adapters.documents import (
    CoachConversationDoc,
    CoachUnlockDoc,
    EntitlementDoc,
    LiveChunkDoc,
    LiveSessionDoc,
    LlmUsageDoc,
    PerformanceDoc,
    PieceCopy,
    PieceGrant,
)
from sonata_scoring.adapters.llm import OpenAICoach
from sonata_scoring.entrypoints.consumer import HANDLERS
from sonata_scoring.entrypoints.http import router
from sonata_scoring.entrypoints.performances import chat_router
from sonata_scoring.entrypoints.performances import router as performances_router
from sonata_scoring.entrypoints.websocket import router as ws_router
from sonata_scoring.service_layer.sessions import finish_abandoned
from sonata_scoring.settings import ScoringSettings

log = logging.getLogger("sonata_scoring")


def create_app() -> FastAPI:
    settings = ScoringSettings()
    sweepers: set[asyncio.Task[None]] = set()

    async def sweep(runtime: Runtime) -> None:
        while True:
            await asyncio.sleep(settings.session_sweep_interval_s)
            try:
                n = await finish_abandoned(
                    runtime.transaction, datetime.now(UTC), settings.session_abandon_after_s
                )
            except Exception:
                log.exception("finishing abandoned sessions failed; retrying next sweep")
                continue
            if n:
                log.info("finished %d abandoned sessions", n)

    async def on_startup(runtime: Runtime) -> None:
        task = asyncio.create_task(sweep(runtime), name="abandoned-session sweeper")
        sweepers.add(task)
        task.add_done_callback(sweepers.discard)
        # Everything made so far (modules, the app, the clients) lives as long as the process:
        # out of the collector's sight, a full collection scans only what sessions made since
        # (a few ms instead of a few hundred, during which every live session waits).
        gc.freeze()
        # Live sessions make many small objects that are freed by reference counting, not by
        # the collector; at the default thresholds its full passes over every session's state
        # stalled all of them (p99 250 ms at 500 sessions, 48 ms with these).
        gc.set_threshold(*settings.gc_threshold)

    key = settings.openai_api_key
    model = (
        None
        if key is None
        else OpenAICoach(
            key.get_secret_value(),
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_timeout_s,
            settings.openai_input_cost_per_mtok,
            settings.openai_output_cost_per_mtok,
        )
    )
    app = create_service_app(
        settings,
        service="ai-scoring",
        title="Sonata ai-scoring",
        description="Live scoring sessions, final reports and the coach.",
        documents=[
            EntitlementDoc,
            PieceCopy,
            PieceGrant,
            LiveSessionDoc,
            LiveChunkDoc,
            PerformanceDoc,
            LlmUsageDoc,
            CoachConversationDoc,
            CoachUnlockDoc,
        ],
        routers=[router, performances_router, chat_router, ws_router],
        handlers=HANDLERS,
        publishes=True,
        on_startup=on_startup,
    )
    app.state.coach_model = model
    return app
