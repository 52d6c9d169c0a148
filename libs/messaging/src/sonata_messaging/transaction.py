"""One MongoDB transaction for a use case or a handler, with the outbox at hand."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError
from sonata_contracts import Event

if TYPE_CHECKING:
    from sonata_messaging.outbox import Outbox

T = TypeVar("T")


@dataclass
class Transaction:
    session: AsyncClientSession
    outbox: Outbox | None = None
    published: int = 0
    committed: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this transaction has committed (never if it aborts)."""
        self.committed.append(callback)

    async def publish(self, event: Event) -> None:
        """Queue ``event`` in the outbox; it is published only if this transaction commits."""
        if self.outbox is None:
            raise RuntimeError("this transaction has no outbox: the service publishes nothing")
        await self.outbox.add(event, self.session)
        self.published += 1


async def run_in_transaction(
    client: AsyncMongoClient[Any],
    fn: Callable[[Transaction], Awaitable[T]],
    *,
    outbox: Outbox | None = None,
    max_attempts: int = 5,
) -> T:
    """Run ``fn`` in a fresh transaction, rerunning it whole on TransientTransactionError."""
    attempt = 1
    while True:
        async with client.start_session() as session:
            tx = Transaction(session, outbox)
            try:
                async with await session.start_transaction():
                    result = await fn(tx)
            except PyMongoError as exc:
                if attempt >= max_attempts or not exc.has_error_label("TransientTransactionError"):
                    raise
            else:
                if outbox is not None and tx.published:
                    outbox.notify_committed()
                for callback in tx.committed:
                    callback()
                return result
        await asyncio.sleep(0.005 * 2**attempt)
        attempt += 1
