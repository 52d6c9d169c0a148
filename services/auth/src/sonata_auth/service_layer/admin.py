"""What only admins may do: change roles, rotate the signing key, read the audit log."""

from __future__ import annotations

from collections.abc import Sequence

from sonata_contracts.auth import UserRoleChanged

from sonata_auth.domain.errors import ForbiddenError, NotFoundError, UnprocessableError
from sonata_auth.domain.model import AccessClaims, AuditEntry, AuditEvent, Role, User
from sonata_auth.service_layer.deps import Deps, audit, revoke_all_sessions
from sonata_auth.service_layer.ports import Tx


def require_admin(claims: AccessClaims) -> None:
    if Role.ADMIN not in claims.roles:
        raise ForbiddenError("only an admin may do this")


OPERATOR = "operator-cli"


async def change_roles(
    d: Deps, actor: AccessClaims | None, user_id: str, roles: Sequence[Role], ip: str | None
) -> User:
    """actor None is the operator's command line, which has no token."""
    if actor is not None:
        require_admin(actor)
    changed_by = actor.sub if actor is not None else OPERATOR
    new_roles = sorted(set(roles))
    if not new_roles:
        raise UnprocessableError("a user needs at least one role")
    now = d.clock.now()

    async def change(tx: Tx) -> User:
        user = await tx.users.get(user_id)
        if user is None:
            raise NotFoundError("no such user")
        old_roles = list(user.roles)
        if sorted(old_roles) == new_roles:
            return user
        user.roles = list(new_roles)
        await tx.users.save(user)
        # Access tokens carry roles: end the sessions so no token outlives its roles by long.
        await revoke_all_sessions(tx, user.id, now, "roles_changed")
        await audit(
            tx,
            AuditEvent.ROLE_CHANGED,
            user.id,
            now,
            ip,
            old_roles=[str(r) for r in old_roles],
            new_roles=[str(r) for r in new_roles],
            changed_by=changed_by,
        )
        await tx.publish(
            UserRoleChanged(
                user_id=user.id,
                old_roles=[str(r) for r in old_roles],
                new_roles=[str(r) for r in new_roles],
                changed_by=changed_by,
            )
        )
        return user

    return await d.uow.run(change)


async def rotate_signing_key(d: Deps, actor: AccessClaims | None, ip: str | None) -> str:
    """actor None is the operator's command line, which has no token."""
    if actor is not None:
        require_admin(actor)
    now = d.clock.now()
    kid = await d.tokens.rotate(now)

    async def record(tx: Tx) -> None:
        await audit(
            tx,
            AuditEvent.SIGNING_KEY_ROTATED,
            actor.sub if actor else OPERATOR,
            now,
            ip,
            kid=kid,
        )

    await d.uow.run(record)
    return kid


async def audit_log(d: Deps, actor: AccessClaims, user_id: str) -> list[AuditEntry]:
    require_admin(actor)

    async def load(tx: Tx) -> list[AuditEntry]:
        return await tx.audit.list_for_user(user_id)

    return await d.uow.run(load)
