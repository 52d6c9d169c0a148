"""Deciding a user's entitlement and telling the fleet when it changes."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from sonata_contracts.payment import EntitlementsChanged, Limits
from sonata_messaging import Transaction

from sonata_payment.adapters import repository as repo
from sonata_payment.domain.billing import Decision, decide


def _ms(value: datetime | None) -> datetime | None:
    """MongoDB keeps milliseconds: compare decisions at the precision they are stored."""
    return None if value is None else value.replace(microsecond=value.microsecond // 1000 * 1000)


async def current_decision(
    user_id: str, now: datetime, grace: timedelta, tx: Transaction | None = None
) -> Decision:
    session = None if tx is None else tx.session
    return decide(
        await repo.subscriptions_of(user_id, session),
        await repo.invoices_of(user_id, session),
        await repo.owns_lifetime(user_id, session),
        now,
        grace,
    )


async def refresh_entitlements(
    tx: Transaction, user_id: str, now: datetime, grace: timedelta
) -> bool:
    """Recompute; publish `payment.entitlements_changed.v1` only when the outcome changed."""
    decision = await current_decision(user_id, now, grace, tx)
    stored = await repo.entitlement(user_id, tx.session)
    limits = asdict(decision.limits)
    valid_until = _ms(decision.valid_until)
    if stored is not None and (stored["plan"], stored["limits"], _ms(stored["valid_until"])) == (
        decision.plan,
        limits,
        valid_until,
    ):
        return False
    version = 1 if stored is None else int(stored["version"]) + 1
    await repo.save_entitlement(
        {
            "user_id": user_id,
            "plan": decision.plan,
            "limits": limits,
            "valid_until": valid_until,
            "version": version,
            "as_of": now,
        },
        tx.session,
    )
    await tx.publish(
        EntitlementsChanged(
            user_id=user_id,
            plan=decision.plan,
            limits=Limits(**limits),
            valid_until=valid_until,
            version=version,
            as_of=now,
        )
    )
    return True
