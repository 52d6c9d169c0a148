"""Sonata notifications: email, SMS and push from domain events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sonata_kit import create_service_app

from sonata_notifications.adapters.documents import DOCUMENTS
from sonata_notifications.adapters.sms import TwilioSender
from sonata_notifications.bootstrap import dispatch_forever, schedule_forever, wire
from sonata_notifications.entrypoints.consumer import handlers
from sonata_notifications.entrypoints.http import router
from sonata_notifications.entrypoints.twilio import router as twilio_router
from sonata_notifications.service_layer.handlers import Policy
from sonata_notifications.settings import NotificationsSettings


def create_app() -> FastAPI:
    settings = NotificationsSettings()
    app = create_service_app(
        settings,
        service="notifications",
        title="Sonata notifications",
        description="Email, SMS and web push from the fleet's events.",
        documents=DOCUMENTS,
        routers=[router, twilio_router],
        handlers=handlers(Policy(rate_limit_per_hour=settings.rate_limit_per_hour)),
        publishes=True,
    )
    kit_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kit_lifespan(app):
            # The senders hold client sessions, so they are built inside the running loop.
            wiring = wire(settings)
            runtime = app.state.runtime
            tasks = [
                asyncio.create_task(dispatch_forever(runtime, wiring), name="dispatcher"),
                asyncio.create_task(schedule_forever(runtime, wiring), name="scheduler"),
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                sms = wiring.senders.get("sms")
                if isinstance(sms, TwilioSender):
                    await sms.close()

    app.router.lifespan_context = lifespan
    return app
