"""Operator commands, run with auth's environment: ``python -m sonata_auth.cli --help``.

The first admin cannot be made through the API (only admins change roles); ``set-roles`` is
how an operator makes one. ``rotate-key`` rotates the signing key without a token.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
from sonata_messaging import Outbox

from sonata_auth import bootstrap
from sonata_auth.adapters.documents import DOCUMENTS
from sonata_auth.domain.errors import AuthError, NotFoundError
from sonata_auth.domain.model import Role, User, normalize_email
from sonata_auth.service_layer import admin
from sonata_auth.service_layer.ports import Tx
from sonata_auth.settings import AuthSettings


async def _run(args: argparse.Namespace) -> str:
    settings = AuthSettings()
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    try:
        database = client[settings.mongodb_db]
        await init_beanie(database=database, document_models=DOCUMENTS)
        outbox = Outbox(database, "auth")
        await outbox.ensure_indexes()
        deps = await bootstrap.build(settings, client, outbox)
        if args.command == "rotate-key":
            return f"new signing key: {await admin.rotate_signing_key(deps, None, None)}"
        email = normalize_email(args.email)

        async def find(tx: Tx) -> User | None:
            return await tx.users.get_by_email(email)

        user = await deps.uow.run(find)
        if user is None:
            raise NotFoundError(f"no account uses {email}")
        roles = [Role(r) for r in args.roles]
        changed = await admin.change_roles(deps, None, user.id, roles, None)
        return f"{email}: roles {', '.join(changed.roles)}"
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sonata_auth.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "rotate-key", help="start signing with a new key; the old one stays published"
    )
    roles = commands.add_parser("set-roles", help="replace a user's roles (publishes the change)")
    roles.add_argument("email")
    roles.add_argument("roles", nargs="+", choices=[r.value for r in Role])
    args = parser.parse_args(argv)
    try:
        print(asyncio.run(_run(args)))
    except AuthError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
