"""The credit ledger: every purchase, spend and refund is an entry; no balance goes below zero."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sonata_contracts.payment import CreditsChanged
from sonata_kit import ServiceError
from sonata_messaging import Transaction

from sonata_payment.adapters import repository as repo
from sonata_payment.domain.plans import CREDIT_PACKS


class InsufficientCredits(ServiceError):  # noqa: N818 - the kit's error naming
    status = 402
    default_code = "insufficient_credits"


@dataclass(frozen=True)
class Movement:
    entry_id: str
    delta: int
    balance: int
    replayed: bool


async def _move(
    tx: Transaction,
    user_id: str,
    delta: int,
    reference: str,
    reason: Literal["purchase", "spend", "refund", "grant", "expiry"],
) -> Movement:
    """One entry per (user, reference): a repeated reference returns the first movement."""
    seen = await repo.ledger_entry(user_id, reference, tx.session)
    if seen is not None:
        return Movement(seen["entry_id"], seen["delta"], seen["balance_after"], replayed=True)
    balance = await repo.change_balance(user_id, delta, tx.session)
    if balance is None:
        have = await repo.balance(user_id, tx.session)
        raise InsufficientCredits(f"{-delta} credits needed, {have} available")
    entry_id = uuid.uuid4().hex
    await repo.add_ledger_entry(
        {
            "entry_id": entry_id,
            "user_id": user_id,
            "reference": reference,
            "delta": delta,
            "balance_after": balance,
            "reason": reason,
            "created_at": datetime.now(UTC),
        },
        tx.session,
    )
    await tx.publish(
        CreditsChanged(
            user_id=user_id, delta=delta, balance=balance, reason=reason, entry_id=entry_id
        )
    )
    return Movement(entry_id, delta, balance, replayed=False)


async def grant_credits(tx: Transaction, user_id: str, credits: int, reference: str) -> Movement:
    return await _move(tx, user_id, credits, reference, "purchase")


async def spend_credits(tx: Transaction, user_id: str, credits: int, reference: str) -> Movement:
    return await _move(tx, user_id, -credits, f"spend:{reference}", "spend")


async def apply_credit_refund(tx: Transaction, user_id: str, item: str, intent: str) -> None:
    """Take back what is left of a refunded pack, never more than the balance."""
    reference = f"refund:{intent}"
    take = min(CREDIT_PACKS[item].credits, await repo.balance(user_id, tx.session))
    await _move(tx, user_id, -take, reference, "refund")
