"""payment's collections. Writes go through the raw collections inside transactions."""

from datetime import datetime
from typing import Any, ClassVar

from beanie import Document
from pymongo import ASCENDING, DESCENDING, IndexModel


class Customer(Document):
    """A user as a paying customer; the provider's customer id comes with the first checkout."""

    user_id: str
    email: str | None = None
    display_name: str | None = None
    provider_customer_id: str | None = None
    created_at: datetime
    erased_at: datetime | None = None

    class Settings:
        name = "customers"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING)], unique=True),
            IndexModel(
                [("provider_customer_id", ASCENDING)],
                unique=True,
                partialFilterExpression={"provider_customer_id": {"$type": "string"}},
            ),
        ]


class Order(Document):
    """One checkout attempt; its id is the provider's idempotency key."""

    order_id: str
    user_id: str
    order_key: str
    item: str
    status: str = "open"  # open | completed | expired
    session_id: str | None = None
    url: str | None = None
    created_at: datetime

    class Settings:
        name = "orders"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING), ("order_key", ASCENDING)], unique=True),
        ]


class SubscriptionDoc(Document):
    subscription_id: str
    user_id: str
    plan: str
    status: str
    current_period_end: datetime
    cancel_at_period_end: bool
    seen_at: datetime
    event_id: str
    fetched_at: datetime | None = None

    class Settings:
        name = "subscriptions"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("subscription_id", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING)]),
        ]


class InvoiceDoc(Document):
    """Invoices of subscriptions and receipts of one-time purchases: what accounting keeps."""

    invoice_id: str
    kind: str  # "invoice" | "receipt"
    user_id: str
    item: str | None = None
    subscription_id: str | None = None
    payment_intent: str | None = None
    amount_cents: int
    currency: str
    paid: bool
    status: str = "open"  # open | uncollectible | void | paid
    period_end: datetime | None = None  # of the service period a subscription invoice bills
    attempt_count: int = 0
    first_failed_at: datetime | None = None
    refunded_cents: int = 0
    url: str | None = None
    created: datetime

    class Settings:
        name = "invoices"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("invoice_id", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING), ("created", DESCENDING)]),
            IndexModel([("payment_intent", ASCENDING)]),
        ]


class CreditAccount(Document):
    user_id: str
    balance: int

    class Settings:
        name = "credit_accounts"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("user_id", ASCENDING)], unique=True)]


class CreditEntry(Document):
    """One ledger line; `reference` makes each purchase, spend or refund count once."""

    entry_id: str
    user_id: str
    reference: str
    delta: int
    balance_after: int
    reason: str
    created_at: datetime

    class Settings:
        name = "credit_ledger"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING), ("reference", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)]),
        ]


class Entitlement(Document):
    """What payment last told the fleet about a user (the version consumers order by)."""

    user_id: str
    plan: str
    limits: dict[str, Any]
    valid_until: datetime | None
    version: int
    as_of: datetime

    class Settings:
        name = "entitlements"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("user_id", ASCENDING)], unique=True),
            IndexModel([("valid_until", ASCENDING)]),
        ]


class ProviderEvent(Document):
    """The webhook inbox: one row per provider event id; handled_at is set only on success."""

    event_id: str
    type: str
    created: datetime
    payload: dict[str, Any] | None  # None: not applied by payment, or about an erased user
    received_at: datetime
    handled_at: datetime | None = None
    error: str | None = None
    rejected_at: datetime | None = None  # dead-lettered: the event itself was refused (4xx)

    class Settings:
        name = "provider_events"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("event_id", ASCENDING)], unique=True)]


DOCUMENTS: list[type[Document]] = [
    Customer,
    Order,
    SubscriptionDoc,
    InvoiceDoc,
    CreditAccount,
    CreditEntry,
    Entitlement,
    ProviderEvent,
]
