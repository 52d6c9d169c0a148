"""Signup, verification, login, refresh, logout, password reset and the JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from sonata_auth.entrypoints.dependencies import CallerDep, DepsDep, IpDep
from sonata_auth.entrypoints.schemas import (
    Accepted,
    LoginIn,
    LoginOut,
    PasswordResetConfirmIn,
    PasswordResetIn,
    RefreshIn,
    SignupIn,
    TokenIn,
    TokenOut,
    TotpLoginIn,
)
from sonata_auth.service_layer import accounts, sessions

router = APIRouter(tags=["sessions"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not authenticated"},
    422: {"description": "malformed body"},
    429: {"description": "rate limited; see Retry-After"},
}


@router.get("/.well-known/jwks.json", tags=["keys"])
async def jwks(deps: DepsDep, response: Response) -> dict[str, Any]:
    # Verifiers cache this; a minute keeps a rotation visible well within a token's life.
    response.headers["Cache-Control"] = "public, max-age=60"
    return await deps.tokens.jwks(deps.clock.now())


@router.post("/v1/signup", status_code=202, responses=ERRORS)
async def signup(body: SignupIn, deps: DepsDep, ip: IpDep) -> Accepted:
    await accounts.signup(
        deps, body.email, body.password, body.display_name, body.locale, body.timezone, ip
    )
    return Accepted(
        status="verification_sent",
        detail="if the address can be registered, a verification link is on its way",
    )


@router.post("/v1/email/verify", responses=ERRORS)
async def verify_email(body: TokenIn, deps: DepsDep, ip: IpDep) -> Accepted:
    await accounts.verify_email(deps, body.token, ip)
    return Accepted(status="verified", detail="the email address is verified")


@router.post("/v1/login", responses=ERRORS)
async def login(body: LoginIn, deps: DepsDep, ip: IpDep) -> LoginOut:
    return LoginOut.of(await sessions.login(deps, body.email, body.password, ip))


@router.post("/v1/login/totp", responses=ERRORS)
async def login_totp(body: TotpLoginIn, deps: DepsDep, ip: IpDep) -> TokenOut:
    return TokenOut.of(await sessions.login_totp(deps, body.challenge, body.code, ip))


@router.post("/v1/token/refresh", responses=ERRORS)
async def refresh(body: RefreshIn, deps: DepsDep, ip: IpDep) -> TokenOut:
    return TokenOut.of(await sessions.refresh(deps, body.refresh_token, ip))


@router.post("/v1/logout", status_code=204, responses=ERRORS)
async def logout(claims: CallerDep, deps: DepsDep, ip: IpDep) -> Response:
    await sessions.logout(deps, claims, ip)
    return Response(status_code=204)


@router.post("/v1/password/reset", status_code=202, responses=ERRORS)
async def request_password_reset(body: PasswordResetIn, deps: DepsDep, ip: IpDep) -> Accepted:
    await accounts.request_password_reset(deps, body.email, ip)
    return Accepted(
        status="accepted", detail="if an account uses this address, a reset link is on its way"
    )


@router.post("/v1/password/reset/confirm", status_code=204, responses=ERRORS)
async def reset_password(body: PasswordResetConfirmIn, deps: DepsDep, ip: IpDep) -> Response:
    await accounts.reset_password(deps, body.token, body.new_password, ip)
    return Response(status_code=204)
