"""The unit of work: repositories and the outbox share one MongoDB transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from sonata_contracts import Event
from sonata_messaging import Outbox, Transaction, run_in_transaction

from sonata_auth.adapters.repository import (
    AuditRepository,
    FamilyRepository,
    OAuthAccountRepository,
    OAuthStateRepository,
    OneTimeSecretRepository,
    RefreshTokenRepository,
    UserRepository,
)
from sonata_auth.service_layer.ports import Tx

T = TypeVar("T")


class MongoTx:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        s = tx.session
        self.users = UserRepository(s)
        self.families = FamilyRepository(s)
        self.refresh_tokens = RefreshTokenRepository(s)
        self.secrets = OneTimeSecretRepository(s)
        self.oauth_accounts = OAuthAccountRepository(s)
        self.oauth_states = OAuthStateRepository(s)
        self.audit = AuditRepository(s)

    async def publish(self, event: Event) -> None:
        await self._tx.publish(event)

    async def forget_events(self, user_id: str) -> None:
        if self._tx.outbox is not None:
            await self._tx.outbox.delete_naming(user_id, self._tx.session)


class MongoUnitOfWork:
    def __init__(self, client: AsyncMongoClient[Any], outbox: Outbox) -> None:
        self.client = client
        self.outbox = outbox

    async def run(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        async def body(tx: Transaction) -> T:
            return await fn(MongoTx(tx))

        return await run_in_transaction(self.client, body, outbox=self.outbox)
