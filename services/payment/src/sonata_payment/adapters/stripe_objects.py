"""The fields of Stripe's objects that payment reads, checked before anything is applied.

A signed event is from Stripe, yet its object may still not have the shape this code expects
(another API version, a missing field, a wrong type). Parsing it here turns that into one
clear refusal (`malformed_event`, with the field) instead of an error halfway through a use case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sonata_kit import Unprocessable

# unix seconds that a datetime can hold (up to the year 9999)
Stamp = Annotated[int, Field(ge=0, le=253_402_300_799)]
Cents = Annotated[int, Field(ge=0)]
Id = Annotated[str, Field(min_length=1, max_length=255)]


def ts(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Price(_Wire):
    id: Id


class Period(_Wire):
    start: Stamp | None = None
    end: Stamp | None = None


class SubscriptionItem(_Wire):
    price: Price
    current_period_end: Stamp | None = None


class ItemList(_Wire):
    data: list[SubscriptionItem] = []


class Subscription(_Wire):
    id: Id
    customer: Id | None = None
    status: str
    cancel_at_period_end: bool = False
    # API versions since 2025 keep the period on the item; older ones on the subscription
    current_period_end: Stamp | None = None
    items: ItemList = ItemList()
    metadata: dict[str, str] = {}

    @property
    def price_id(self) -> str:
        return self.items.data[0].price.id if self.items.data else ""

    @property
    def period_end(self) -> datetime:
        if self.current_period_end is not None:
            return ts(self.current_period_end)
        ends = [i.current_period_end for i in self.items.data if i.current_period_end is not None]
        if not ends:
            raise Unprocessable(
                f"subscription {self.id} states no current period end", code="malformed_event"
            )
        return ts(max(ends))


class SubscriptionDetails(_Wire):
    subscription: Id | None = None


class InvoiceParent(_Wire):
    subscription_details: SubscriptionDetails | None = None


class InvoiceLine(_Wire):
    period: Period | None = None


class LineList(_Wire):
    data: list[InvoiceLine] = []


class PaymentRef(_Wire):
    payment_intent: Id | None = None


class InvoicePayment(_Wire):
    payment: PaymentRef | None = None


class PaymentList(_Wire):
    data: list[InvoicePayment] = []


class Invoice(_Wire):
    id: Id
    customer: Id | None = None
    status: str | None = None
    subscription: Id | None = None  # before API 2025-03; since then under `parent`
    parent: InvoiceParent | None = None
    amount_due: Cents = 0
    currency: str = "eur"
    attempt_count: Annotated[int, Field(ge=0)] = 0
    created: Stamp
    hosted_invoice_url: str | None = None
    period_end: Stamp | None = None
    lines: LineList = LineList()
    payment_intent: Id | None = None  # before API 2025-03; since then under `payments`
    payments: PaymentList = PaymentList()
    metadata: dict[str, str] = {}

    @property
    def subscription_id(self) -> str | None:
        if self.subscription:
            return self.subscription
        details = self.parent.subscription_details if self.parent else None
        return details.subscription if details else None

    @property
    def service_period_end(self) -> datetime | None:
        """The end of the period it bills: its lines' period (the invoice's own `period_end`
        is the end of the usage period before it, i.e. the start of the new one)."""
        ends = [ln.period.end for ln in self.lines.data if ln.period and ln.period.end]
        if ends:
            return ts(max(ends))
        return None

    @property
    def intent(self) -> str | None:
        if self.payment_intent:
            return self.payment_intent
        for p in self.payments.data:
            if p.payment and p.payment.payment_intent:
                return p.payment.payment_intent
        return None


class Charge(_Wire):
    id: Id
    customer: Id | None = None
    payment_intent: Id | None = None
    invoice: Id | None = None  # before API 2025-03
    amount: Cents
    amount_refunded: Cents = 0
    created: Stamp
    metadata: dict[str, str] = {}


class CheckoutSession(_Wire):
    id: Id
    customer: Id | None = None
    mode: str | None = None
    payment_status: str | None = None
    payment_intent: Id | None = None
    amount_total: Cents | None = None
    currency: str | None = None
    created: Stamp
    metadata: dict[str, str] = {}


M = TypeVar("M", bound=_Wire)


def parse(model: type[M], event: dict[str, Any]) -> M:
    """The event's object as ``model``, or a 422 naming what is wrong with it."""
    return parse_object(model, event["data"]["object"], f"{event['type']} object")


def parse_object(model: type[M], obj: Any, what: str) -> M:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        wrong = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'object'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise Unprocessable(f"malformed {what}: {wrong}", code="malformed_event") from exc
