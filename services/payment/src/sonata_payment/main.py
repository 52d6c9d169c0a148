"""payment's app: the fleet's app factory, payment's routers, and the grace-period sweep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from sonata_kit import Runtime, create_service_app

from sonata_payment import bootstrap
from sonata_payment.adapters.documents import DOCUMENTS
from sonata_payment.entrypoints import http, webhooks
from sonata_payment.entrypoints.consumer import handlers
from sonata_payment.service_layer.grace import expire_entitlements
from sonata_payment.settings import PaymentSettings

log = logging.getLogger(__name__)


async def sweep_forever(runtime: Runtime, deps: bootstrap.Deps) -> None:
    transactions = bootstrap.RuntimeTransactions(runtime.client, runtime.outbox)
    while True:
        try:
            await expire_entitlements(transactions, deps.clock.now(), deps.billing.grace)
        except Exception:
            # the next sweep retries; a failed one must not stop the loop
            log.exception("grace-period sweep failed")
        await asyncio.sleep(deps.grace_sweep_interval_s)


def create_app() -> FastAPI:
    settings = PaymentSettings()
    deps = bootstrap.build(settings)
    app = create_service_app(
        settings,
        service="payment",
        title="Sonata payment",
        description="Plans, checkout, webhooks, entitlements and credits.",
        documents=DOCUMENTS,
        routers=[http.router, webhooks.router],
        handlers=handlers(deps.provider, deps.clock),
        publishes=True,
    )
    app.state.deps = deps
    kit_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kit_lifespan(app):
            sweep = asyncio.create_task(sweep_forever(app.state.runtime, deps), name="grace")
            try:
                yield
            finally:
                sweep.cancel()
                with suppress(asyncio.CancelledError):
                    await sweep

    app.router.lifespan_context = lifespan
    return app
