"""Entitlements whose paid time ran out (a grace period ended, a period was not renewed)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sonata_messaging import Transaction

from sonata_payment.adapters import repository as repo
from sonata_payment.service_layer.entitlements import refresh_entitlements
from sonata_payment.service_layer.ports import Transactions


async def expire_entitlements(transactions: Transactions, now: datetime, grace: timedelta) -> int:
    """Re-decide every entitlement past its `valid_until`; returns how many changed."""
    changed = 0
    for user_id in await repo.expired_entitlements(now):

        async def use_case(tx: Transaction, user_id: str = user_id) -> bool:
            return await refresh_entitlements(tx, user_id, now, grace)

        changed += await transactions(use_case)
    return changed
