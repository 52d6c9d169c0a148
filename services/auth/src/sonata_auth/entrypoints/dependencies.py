"""FastAPI dependencies shared by auth's routers: the wired use-case deps, the caller, the IP."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sonata_kit import ServiceUnavailable

from sonata_auth.domain.errors import InvalidTokenError
from sonata_auth.domain.model import AccessClaims
from sonata_auth.service_layer import sessions
from sonata_auth.service_layer.deps import Deps

_bearer = HTTPBearer(auto_error=False, description="An access token issued by auth")


def get_deps(request: Request) -> Deps:
    deps: Deps | None = getattr(request.app.state, "deps", None)
    if deps is None:
        raise ServiceUnavailable("auth is starting", code="starting")
    return deps


def client_ip(request: Request) -> str | None:
    # uvicorn's proxy-headers already replaced this with X-Forwarded-For from trusted proxies.
    return request.client.host if request.client else None


DepsDep = Annotated[Deps, Depends(get_deps)]
IpDep = Annotated[str | None, Depends(client_ip)]


async def optional_caller(
    deps: DepsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims | None:
    if credentials is None:
        return None
    return await sessions.authenticate(deps, credentials.credentials)


async def caller(claims: Annotated[AccessClaims | None, Depends(optional_caller)]) -> AccessClaims:
    if claims is None:
        raise InvalidTokenError("an access token is required (Authorization: Bearer ...)")
    return claims


CallerDep = Annotated[AccessClaims, Depends(caller)]
OptionalCallerDep = Annotated[AccessClaims | None, Depends(optional_caller)]
