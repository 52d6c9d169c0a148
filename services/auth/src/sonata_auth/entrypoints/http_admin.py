"""Admin endpoints: roles, audit log, signing-key rotation."""

from __future__ import annotations

from fastapi import APIRouter

from sonata_auth.entrypoints.dependencies import CallerDep, DepsDep, IpDep
from sonata_auth.entrypoints.http_sessions import ERRORS
from sonata_auth.entrypoints.schemas import AuditOut, MeOut, RolesIn, RotatedOut
from sonata_auth.service_layer import admin

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERRORS)


@router.put("/users/{user_id}/roles")
async def change_roles(
    user_id: str, body: RolesIn, claims: CallerDep, deps: DepsDep, ip: IpDep
) -> MeOut:
    return MeOut.of(await admin.change_roles(deps, claims, user_id, body.roles, ip))


@router.get("/users/{user_id}/audit")
async def audit_log(user_id: str, claims: CallerDep, deps: DepsDep) -> list[AuditOut]:
    entries = await admin.audit_log(deps, claims, user_id)
    return [AuditOut(at=e.at, event=str(e.event), ip=e.ip, detail=e.detail) for e in entries]


@router.post("/keys/rotate")
async def rotate_key(claims: CallerDep, deps: DepsDep, ip: IpDep) -> RotatedOut:
    return RotatedOut(kid=await admin.rotate_signing_key(deps, claims, ip))
