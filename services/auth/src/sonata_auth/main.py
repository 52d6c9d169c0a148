"""auth's app: the fleet's app factory, auth's routers, and its dependencies wired at startup."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sonata_kit import Runtime, create_service_app
from sonata_kit.errors import error_response

from sonata_auth import bootstrap
from sonata_auth.adapters.documents import DOCUMENTS
from sonata_auth.domain.errors import AuthError
from sonata_auth.entrypoints import http_account, http_admin, http_oauth, http_sessions
from sonata_auth.settings import AuthSettings


async def _auth_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return error_response(exc.status, exc.code, exc.detail, headers)


def create_app() -> FastAPI:
    settings = AuthSettings()

    async def on_startup(runtime: Runtime) -> None:
        app.state.deps = await bootstrap.build(settings, runtime.client, runtime.outbox)

    app = create_service_app(
        settings,
        service="auth",
        title="Sonata auth",
        description="Accounts, sessions, OAuth/OIDC login, 2FA, roles; signs access tokens.",
        documents=DOCUMENTS,
        routers=[
            http_sessions.router,
            http_account.router,
            http_admin.router,
            http_oauth.router,
        ],
        publishes=True,
        on_startup=on_startup,
    )
    app.add_exception_handler(AuthError, _auth_error)
    return app
