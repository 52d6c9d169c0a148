"""OAuth/OIDC login: send the browser to the provider, then finish with its code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse

from sonata_auth.entrypoints.dependencies import DepsDep, IpDep
from sonata_auth.entrypoints.http_sessions import ERRORS
from sonata_auth.entrypoints.schemas import LoginOut, OAuthCallbackIn
from sonata_auth.service_layer import oauth

router = APIRouter(prefix="/v1/oauth", tags=["oauth"], responses=ERRORS)


@router.get("/providers")
async def providers(deps: DepsDep) -> list[str]:
    return deps.oidc.providers()


@router.get("/{provider}/authorize", status_code=302, response_class=RedirectResponse)
async def authorize(
    provider: str,
    redirect_uri: Annotated[str, Query(min_length=1, max_length=2048)],
    deps: DepsDep,
) -> RedirectResponse:
    """Redirects to the provider; it comes back to ``redirect_uri`` with code and state."""
    url = await oauth.begin(deps, provider, redirect_uri)
    return RedirectResponse(url, status_code=302)


@router.post("/{provider}/callback")
async def callback(provider: str, body: OAuthCallbackIn, deps: DepsDep, ip: IpDep) -> LoginOut:
    result = await oauth.complete(deps, provider, body.code, body.state, body.redirect_uri, ip)
    return LoginOut.of(result)
