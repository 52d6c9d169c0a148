"""`/ws/v1/sessions`: the handshake (origin, token), then one `Connection` per socket."""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from sonata_kit import Principal, ServiceError
from sonata_kit.observability import request_id_from
from sonata_messaging import correlation_scope

from sonata_scoring.domain.protocol import PROTOCOL, bearer_from_subprotocols
from sonata_scoring.entrypoints.connection import Connection
from sonata_scoring.settings import ScoringSettings

log = logging.getLogger("sonata_scoring.ws")
router = APIRouter()


async def _deny(websocket: WebSocket, status: int, error: str, detail: str) -> None:
    log.info("websocket refused: %s", error)
    await websocket.send_denial_response(
        JSONResponse({"error": error, "detail": detail}, status_code=status)
    )


@router.websocket("/ws/v1/sessions")
async def live_sessions(websocket: WebSocket) -> None:
    # the upgrade request's id (nginx mints one when the client sent none), else a new one:
    # every log line of this connection and every event its sessions publish carries it
    raw = websocket.headers.get("x-request-id") or websocket.headers.get("x-correlation-id")
    with correlation_scope(request_id_from(raw)):
        await _live_sessions(websocket)


async def _live_sessions(websocket: WebSocket) -> None:
    settings: ScoringSettings = websocket.app.state.settings
    runtime = getattr(websocket.app.state, "runtime", None)
    if runtime is None:
        await _deny(websocket, 503, "starting", "the service is starting")
        return
    origin = websocket.headers.get("origin")
    # Browsers always send Origin; a device or CLI sends none and proves itself by its token.
    if origin is not None and origin not in settings.ws_allowed_origins:
        await _deny(websocket, 403, "origin_not_allowed", f"origin {origin} may not connect")
        return
    speaks, token = bearer_from_subprotocols(list(websocket.scope.get("subprotocols", [])))
    if websocket.scope.get("subprotocols") and not speaks:
        await _deny(websocket, 400, "unsupported_protocol", f"offer the {PROTOCOL} subprotocol")
        return
    principal: Principal | None = None
    if token is not None:
        try:
            principal = await websocket.app.state.verifier.verify(token)
        except ServiceError as exc:
            await _deny(websocket, exc.status_code, exc.code, str(exc.detail))
            return
    await websocket.accept(subprotocol=PROTOCOL if speaks else None)
    await Connection(websocket, settings, runtime, principal).run()
