"""The credit ledger: every purchase, spend and refund is an entry; no balance goes below zero."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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
    now: datetime,
    spent_on: str | None = None,
) -> Movement:
    """One entry per (user, reference): a repeated reference returns the first movement.
    `spent_on`: the spend's own reference, told to consumers with the entry."""
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
            "created_at": now,
        },
        tx.session,
    )
    await tx.publish(
        CreditsChanged(
            user_id=user_id,
            delta=delta,
            balance=balance,
            reason=reason,
            entry_id=entry_id,
            reference=spent_on,
        )
    )
    return Movement(entry_id, delta, balance, replayed=False)


async def grant_credits(
    tx: Transaction, user_id: str, credits: int, reference: str, now: datetime
) -> Movement:
    return await _move(tx, user_id, credits, reference, "purchase", now)


async def spend_credits(
    tx: Transaction, user_id: str, credits: int, reference: str, now: datetime
) -> Movement:
    return await _move(tx, user_id, -credits, f"spend:{reference}", "spend", now, reference)


def refunded_credits(pack_credits: int, amount_cents: int, refunded_cents: int) -> int:
    """The credits a refund takes back: in proportion to the money, rounded down (a refund
    of a few cents takes none), and the whole pack for the whole price."""
    if amount_cents <= 0 or refunded_cents >= amount_cents:
        return pack_credits
    return pack_credits * refunded_cents // amount_cents


async def apply_credit_refund(tx: Transaction, receipt: dict[str, Any], now: datetime) -> None:
    """Take back the refunded share of a credit pack, never more than the balance holds.

    The charge's refunded amount is cumulative, so each refunded amount is one ledger entry
    taking the difference to what earlier refunds of this purchase took; a stale, smaller
    amount arriving late takes nothing. Credits already spent are not taken back (a later
    refund of the same purchase takes what this one could not).
    """
    user_id, intent = str(receipt["user_id"]), str(receipt["payment_intent"])
    due = refunded_credits(
        CREDIT_PACKS[str(receipt["item"])].credits,
        int(receipt["amount_cents"]),
        int(receipt["refunded_cents"]),
    )
    taken = -sum(
        e["delta"] for e in await repo.ledger_entries(user_id, f"refund:{intent}:", tx.session)
    )
    if due > taken:  # the entry is written even when nothing is left to take
        take = min(due - taken, await repo.balance(user_id, tx.session))
        reference = f"refund:{intent}:{receipt['refunded_cents']}"
        await _move(tx, user_id, -take, reference, "refund", now)
