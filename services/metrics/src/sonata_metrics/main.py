"""Sonata metrics: business KPIs from the fleet's domain events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sonata_kit import create_service_app

from sonata_metrics.adapters.documents import DOCUMENTS
from sonata_metrics.adapters.gauges import refresh_forever
from sonata_metrics.adapters.store import MongoKpiReader
from sonata_metrics.entrypoints.consumer import CATCH_ALL
from sonata_metrics.entrypoints.http import router
from sonata_metrics.settings import MetricsSettings


def create_app() -> FastAPI:
    settings = MetricsSettings()
    app = create_service_app(
        settings,
        service="metrics",
        title="Sonata metrics",
        description="Business KPIs built from the fleet's domain events.",
        documents=DOCUMENTS,
        routers=[router],
        catch_all=CATCH_ALL,
    )
    kit_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kit_lifespan(app):
            refresh = asyncio.create_task(
                refresh_forever(
                    MongoKpiReader(), settings.plan_prices, settings.kpi_refresh_interval_s
                ),
                name="kpi gauges",
            )
            try:
                yield
            finally:
                refresh.cancel()
                await asyncio.gather(refresh, return_exceptions=True)

    app.router.lifespan_context = lifespan
    return app
