"""The caller's own account: profile, phone, TOTP, export, deletion."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from sonata_auth.domain.errors import InvalidTokenError
from sonata_auth.entrypoints.dependencies import CallerDep, DepsDep, IpDep, OptionalCallerDep
from sonata_auth.entrypoints.http_sessions import ERRORS
from sonata_auth.entrypoints.schemas import (
    Accepted,
    MeOut,
    PhoneCodeIn,
    PhoneIn,
    PhoneOut,
    TokenOut,
    TotpConfirmIn,
    TotpConfirmOut,
    TotpEnrolIn,
    TotpEnrolOut,
)
from sonata_auth.service_layer import accounts, totp

router = APIRouter(prefix="/v1", tags=["account"], responses=ERRORS)


@router.get("/me")
async def me(claims: CallerDep, deps: DepsDep) -> MeOut:
    return MeOut.of(await accounts.get_user(deps, claims.sub))


@router.get("/me/export")
async def export(claims: CallerDep, deps: DepsDep, response: Response) -> dict[str, Any]:
    response.headers["Content-Disposition"] = 'attachment; filename="sonata-auth-export.json"'
    return await accounts.export_account(deps, claims.sub)


@router.delete("/me", status_code=204)
async def delete_me(claims: CallerDep, deps: DepsDep) -> Response:
    await accounts.delete_account(deps, claims.sub)
    return Response(status_code=204)


@router.post("/me/phone", status_code=202)
async def request_phone(body: PhoneIn, claims: CallerDep, deps: DepsDep, ip: IpDep) -> Accepted:
    await accounts.request_phone_verification(deps, claims.sub, body.phone, ip)
    return Accepted(status="code_sent", detail="a verification code is on its way by SMS")


@router.post("/me/phone/verify")
async def verify_phone(body: PhoneCodeIn, claims: CallerDep, deps: DepsDep, ip: IpDep) -> PhoneOut:
    phone = await accounts.confirm_phone(deps, claims.sub, body.code, ip)
    return PhoneOut(phone=phone, phone_verified=True)


def _who(claims: OptionalCallerDep, enrolment_token: str | None) -> dict[str, str | None]:
    if enrolment_token is not None:
        return {"enrolment_token": enrolment_token}
    if claims is None:
        raise InvalidTokenError("an access token or an enrolment_token is required")
    return {"user_id": claims.sub}


@router.post("/2fa/totp/enrol")
async def enrol_totp(body: TotpEnrolIn, claims: OptionalCallerDep, deps: DepsDep) -> TotpEnrolOut:
    enrolment = await totp.start_enrolment(deps, **_who(claims, body.enrolment_token))
    return TotpEnrolOut(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri)


@router.post("/2fa/totp/confirm")
async def confirm_totp(
    body: TotpConfirmIn, claims: OptionalCallerDep, deps: DepsDep, ip: IpDep
) -> TotpConfirmOut:
    pair = await totp.confirm_enrolment(deps, body.code, ip, **_who(claims, body.enrolment_token))
    return TotpConfirmOut(tokens=TokenOut.of(pair) if pair else None)
