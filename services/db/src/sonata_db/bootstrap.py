"""The one place db is wired: settings, documents, routes, consumer, catalogue, streak sweep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from anyio import to_thread
from fastapi import FastAPI
from fastapi.middleware import Middleware
from prometheus_client import Gauge
from pymongo.errors import DuplicateKeyError
from sonata_kit import Runtime, create_service_app
from sonata_messaging import Transaction

from sonata_db.adapters.documents import DOCUMENTS
from sonata_db.adapters.read_cache import ReadCache
from sonata_db.adapters.scores import Limits
from sonata_db.entrypoints import http_library, http_practice, http_teaching
from sonata_db.entrypoints.cached import KeptAnswers
from sonata_db.entrypoints.consumer import handlers
from sonata_db.service_layer.pieces import parse_catalogue, seed_catalogue
from sonata_db.service_layer.streaks import sweep_streaks
from sonata_db.settings import LibrarySettings

log = logging.getLogger("sonata.db")
CATALOGUE_SKIPPED = Gauge(
    "sonata_db_catalogue_skipped", "starting-catalogue pieces refused by the upload limits"
)


def sweep_clock(settings: LibrarySettings) -> Callable[[], datetime]:
    """The wall clock, or one started at STREAK_CLOCK_START that runs at real speed."""
    offset = timedelta(0)
    if settings.streak_clock_start is not None:
        offset = settings.streak_clock_start - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


async def sweep_forever(runtime: Runtime, settings: LibrarySettings) -> None:
    clock = sweep_clock(settings)

    async def run(fn: Callable[[Transaction], Awaitable[bool]]) -> bool:
        return await runtime.transaction(fn)

    while True:
        try:
            warned = await sweep_streaks(run, clock(), settings.streak_at_risk_from)
            if warned:
                log.info("streak at risk: %d learners told", len(warned))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("streak sweep failed; trying again next interval")
        await asyncio.sleep(settings.streak_sweep_interval_s)


def build_app(settings: LibrarySettings | None = None) -> FastAPI:
    settings = settings or LibrarySettings()
    limits = Limits(settings.max_upload_bytes, settings.max_score_notes, settings.max_score_bars)
    reads = ReadCache(
        settings.read_cache_ttl_s,
        settings.read_cache_entries,
        max_bytes=settings.read_cache_mb * 2**20,
    )

    async def on_startup(runtime: Runtime) -> None:
        if not settings.seed_catalogue:
            return
        parsed, skipped = await to_thread.run_sync(parse_catalogue, limits)
        for piece in skipped:
            log.warning("starting catalogue: %s skipped: %s", piece.file, piece.reason)
        CATALOGUE_SKIPPED.set(len(skipped))

        async def seed(tx: Transaction) -> list[str]:
            reads.after_commit(tx, library=True)
            return await seed_catalogue(tx, parsed)

        try:
            added = await runtime.transaction(seed)
        except DuplicateKeyError:
            added = []  # another replica seeded the same pieces at the same moment
        log.info("starting catalogue: %d pieces added, %d skipped", len(added), len(skipped))

    app = create_service_app(
        settings,
        service="db",
        title="Sonata library",
        description="Pieces, practice sessions, performances, progress and assignments.",
        documents=DOCUMENTS,
        routers=[http_library.router, http_practice.router, http_teaching.router],
        handlers=handlers(settings.mastery_threshold, reads),
        publishes=True,
        on_startup=on_startup,
    )
    app.state.reads = reads
    # innermost: inside the kit's request id and metrics middleware, before the routes
    app.user_middleware.append(Middleware(KeptAnswers, reads=reads))
    kit_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kit_lifespan(app):
            task = asyncio.create_task(
                sweep_forever(app.state.runtime, settings), name="streak sweep"
            )
            try:
                yield
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    app.router.lifespan_context = lifespan
    return app
