from fastapi import FastAPI
from sonata_kit import create_service_app

from sonata_metrics.adapters.documents import DailyEventCount
from sonata_metrics.entrypoints.consumer import CATCH_ALL
from sonata_metrics.entrypoints.http import router
from sonata_metrics.settings import MetricsSettings


def create_app() -> FastAPI:
    settings = MetricsSettings()
    return create_service_app(
        settings,
        service="metrics",
        title="Sonata metrics",
        description="Business rollups built from the fleet's domain events.",
        documents=[DailyEventCount],
        routers=[router],
        catch_all=CATCH_ALL,
    )
