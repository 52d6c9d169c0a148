"""A local Stripe API for tests: a real HTTP server speaking Stripe's wire format.

It answers exactly the calls the payment service makes (form-encoded POSTs, ``Idempotency-Key``
replay, Stripe-shaped objects and errors) and plays the customer's and the merchant's side:
completing or abandoning a checkout, renewing or failing a renewal, pausing, voiding or writing
off an invoice, refunding a charge in full or in part. Each of those produces Stripe events,
delivered to ``webhook_url`` (when set) with a real ``Stripe-Signature`` header, in order,
from one thread.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from http.server import ThreadingHTTPServer

import httpx

from sonata_testing.stripe_wire import (
    DAY_S,
    Obj,
    Price,
    StripeError,
    handler_for,
    interval_s,
    parse_form,
    public,
    sign,
)

__all__ = ["Price", "StripeDouble", "StripeError", "sign"]


class StripeDouble:
    """``with StripeDouble(api_key, webhook_secret, prices) as stripe_api: stripe_api.url``."""

    def __init__(
        self, api_key: str, webhook_secret: str, prices: list[Price], *, port: int = 0
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.prices = {p.id: p for p in prices}
        self.webhook_url: str | None = None
        self.objects: dict[str, Obj] = {}
        self.events: list[Obj] = []
        self.requests: list[tuple[str, str, Obj]] = []
        self.deliveries: list[tuple[str, int]] = []
        self._idempotent: dict[str, tuple[str, int, Obj]] = {}
        self.clock_offset_s = 0
        self.frozen_at: int | None = None  # set: every object and event gets this second
        self._lock = threading.RLock()
        self._outgoing: queue.Queue[Obj | None] = queue.Queue()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(self.handle))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> StripeDouble:
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True),
            threading.Thread(target=self._deliver_loop, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._outgoing.put(None)
        self._server.shutdown()
        self._server.server_close()

    def wait_delivered(self, timeout: float = 30.0) -> None:
        """Block until every queued event has been posted to the webhook."""
        deadline = time.monotonic() + timeout
        while self._outgoing.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._outgoing.unfinished_tasks:
            raise AssertionError("webhook deliveries still pending")

    def now(self) -> int:
        """The provider's clock (unix seconds); ``advance`` moves it, as days pass."""
        if self.frozen_at is not None:
            return self.frozen_at
        return int(time.time()) + self.clock_offset_s

    def advance(self, seconds: int) -> None:
        self.clock_offset_s += seconds

    # --- the API ---------------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: dict[str, str], body: str) -> tuple[int, Obj]:
        if headers.get("authorization", "") != f"Bearer {self.api_key}":
            return 401, StripeError(401, "Invalid API Key provided").body()
        params = parse_form(body) if body else {}
        key = headers.get("idempotency-key")
        fingerprint = f"{method} {path} {body}"
        with self._lock:
            self.requests.append((method, path, params))
            if key is not None and method in ("POST", "DELETE"):
                seen = self._idempotent.get(key)
                if seen is not None:
                    if seen[0] != fingerprint:
                        return 400, StripeError(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                            code="idempotency_key_in_use",
                        ).body()
                    return seen[1], seen[2]
            try:
                status, result = 200, self._route(method, path, params)
            except StripeError as exc:
                status, result = exc.status, exc.body()
            if key is not None and method in ("POST", "DELETE"):
                self._idempotent[key] = (fingerprint, status, public(result))
            return status, public(result)

    def _route(self, method: str, path: str, params: Obj) -> Obj:
        parts = path.strip("/").split("/")
        match method, parts:
            case "POST", ["v1", "customers"]:
                return self._create_customer(params)
            case "DELETE", ["v1", "customers", customer_id]:
                return self._delete_customer(customer_id)
            case "POST", ["v1", "checkout", "sessions"]:
                return self._create_checkout(params)
            case "POST", ["v1", "billing_portal", "sessions"]:
                customer = self._get(params.get("customer", ""), "customer")
                return self._store(
                    "bps",
                    {
                        "object": "billing_portal.session",
                        "customer": customer["id"],
                        "return_url": params.get("return_url"),
                        "url": f"{self.url}/portal/{customer['id']}",
                    },
                )
            case "GET", ["v1", "subscriptions", sub_id]:
                return self._get(sub_id, "subscription")
            case "POST", ["v1", "subscriptions", sub_id]:
                return self._modify_subscription(sub_id, params)
            case "DELETE", ["v1", "subscriptions", sub_id]:
                return self._end_subscription(sub_id)
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:20]}"

    def _store(self, prefix: str, obj: Obj) -> Obj:
        obj = {"id": self._new_id(prefix), "livemode": False, "created": self.now(), **obj}
        self.objects[obj["id"]] = obj
        return obj

    def _get(self, obj_id: str, kind: str) -> Obj:
        obj = self.objects.get(obj_id)
        if obj is None or obj["object"] != kind or obj.get("_deleted"):
            raise StripeError(
                404, f"No such {kind}: '{obj_id}'", code="resource_missing", param="id"
            )
        return obj

    def _create_customer(self, params: Obj) -> Obj:
        return self._store(
            "cus",
            {
                "object": "customer",
                "email": params.get("email"),
                "name": params.get("name"),
                "metadata": params.get("metadata", {}),
            },
        )

    def _delete_customer(self, customer_id: str) -> Obj:
        """Stripe deletes the customer's data and cancels its subscriptions at once."""
        customer = self._get(customer_id, "customer")
        for sub in list(self.objects.values()):
            if sub["object"] == "subscription" and sub["customer"] == customer_id:
                self._end_subscription(sub["id"])
        self._emit("customer.deleted", customer)
        gone = {"id": customer_id, "object": "customer", "deleted": True}
        self.objects[customer_id] = {**gone, "_deleted": True}
        return gone

    def _create_checkout(self, params: Obj) -> Obj:
        mode = params.get("mode")
        if mode not in ("subscription", "payment"):
            raise StripeError(400, "Invalid mode", param="mode")
        items = params.get("line_items") or []
        if len(items) != 1 or items[0].get("price") not in self.prices:
            raise StripeError(400, "No such price", code="resource_missing", param="line_items")
        price = self.prices[items[0]["price"]]
        if (price.interval is None) != (mode == "payment"):
            raise StripeError(400, "The price's type does not match the mode", param="mode")
        for field in ("success_url", "cancel_url"):
            if not params.get(field):
                raise StripeError(400, f"Missing required param: {field}.", param=field)
        customer = self._get(params.get("customer", ""), "customer")
        session = self._store(
            "cs_test",
            {
                "object": "checkout.session",
                "mode": mode,
                "status": "open",
                "payment_status": "unpaid",
                "customer": customer["id"],
                "client_reference_id": params.get("client_reference_id"),
                "metadata": params.get("metadata", {}),
                "amount_total": price.unit_amount,
                "currency": price.currency,
                "subscription": None,
                "payment_intent": None,
                "success_url": params["success_url"],
                "cancel_url": params["cancel_url"],
                "_price": price.id,
                "_subscription_metadata": params.get("subscription_data", {}).get("metadata", {}),
            },
        )
        session["url"] = f"{self.url}/pay/{session['id']}"
        return session

    def _modify_subscription(self, sub_id: str, params: Obj) -> Obj:
        sub = self._get(sub_id, "subscription")
        if sub["status"] == "canceled":
            raise StripeError(400, "A canceled subscription can only update its metadata")
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
            sub["canceled_at"] = self.now() if sub["cancel_at_period_end"] else None
        self._emit("customer.subscription.updated", sub)
        return sub

    def _end_subscription(self, sub_id: str) -> Obj:
        sub = self._get(sub_id, "subscription")
        if sub["status"] != "canceled":
            now = self.now()
            sub.update(status="canceled", canceled_at=now, ended_at=now)
            self._emit("customer.subscription.deleted", sub)
        return sub

    # --- the customer's side ---------------------------------------------------------------
    def complete_checkout(self, session_id: str) -> list[Obj]:
        """The customer pays: the session completes and its subscription or charge exists."""
        with self._lock:
            first = len(self.events)
            session = self._get(session_id, "checkout.session")
            price = self.prices[session["_price"]]
            session.update(status="complete", payment_status="paid")
            if price.interval is None:
                intent = self._new_id("pi")
                session["payment_intent"] = intent
                self._charge(session["customer"], price, intent)
                self._emit("checkout.session.completed", session)
            else:
                sub = self._subscription(session, price)
                session["subscription"] = sub["id"]
                self._emit("checkout.session.completed", session)
                self._emit("customer.subscription.created", sub)
                invoice = self._invoice(sub, price, paid=True, reason="subscription_create")
                self._emit("invoice.paid", invoice)
            return self.events[first:]

    def expire_checkout(self, session_id: str) -> list[Obj]:
        """The customer left the page: after a day Stripe expires the open session."""
        with self._lock:
            first = len(self.events)
            session = self._get(session_id, "checkout.session")
            if session["status"] != "open":
                raise StripeError(400, "Only open sessions can be expired")
            session["status"] = "expired"
            self._emit("checkout.session.expired", session)
            return self.events[first:]

    def renew(self, sub_id: str) -> list[Obj]:
        """The next period starts and its invoice is paid at once."""
        with self._lock:
            first = len(self.events)
            sub = self._get(sub_id, "subscription")
            price = self.prices[sub["items"]["data"][0]["price"]["id"]]
            self._advance(sub, price)
            sub["status"] = "active"
            invoice = self._invoice(sub, price, paid=True, reason="subscription_cycle")
            self._emit("customer.subscription.updated", sub)
            self._emit("invoice.paid", invoice)
            return self.events[first:]

    def pause(self, sub_id: str) -> list[Obj]:
        """Billing stops (a trial ended without a payment method): ``paused``."""
        with self._lock:
            first = len(self.events)
            sub = self._get(sub_id, "subscription")
            sub["status"] = "paused"
            self._emit("customer.subscription.paused", sub)
            self._emit("customer.subscription.updated", sub)
            return self.events[first:]

    def void_invoice(self, invoice_id: str) -> list[Obj]:
        return self._close_invoice(invoice_id, "void", "invoice.voided")

    def mark_uncollectible(self, invoice_id: str) -> list[Obj]:
        return self._close_invoice(invoice_id, "uncollectible", "invoice.marked_uncollectible")

    def _close_invoice(self, invoice_id: str, status: str, kind: str) -> list[Obj]:
        with self._lock:
            first = len(self.events)
            invoice = self._get(invoice_id, "invoice")
            if invoice["status"] not in ("open", "uncollectible"):
                raise StripeError(400, f"A {invoice['status']} invoice cannot become {status}")
            invoice.update(status=status, next_payment_attempt=None)
            self._emit(kind, invoice)
            return self.events[first:]

    def fail_renewal(self, sub_id: str) -> list[Obj]:
        """The next period starts and its invoice cannot be paid: past_due, then dunning."""
        with self._lock:
            first = len(self.events)
            sub = self._get(sub_id, "subscription")
            price = self.prices[sub["items"]["data"][0]["price"]["id"]]
            self._advance(sub, price)
            sub["status"] = "past_due"
            invoice = self._invoice(sub, price, paid=False, reason="subscription_cycle")
            self._emit("customer.subscription.updated", sub)
            self._emit("invoice.payment_failed", invoice)
            return self.events[first:]

    def retry_fails(self, invoice_id: str) -> list[Obj]:
        """Stripe's next automatic attempt at an open invoice fails too."""
        with self._lock:
            first = len(self.events)
            invoice = self._get(invoice_id, "invoice")
            invoice["attempt_count"] += 1
            invoice["next_payment_attempt"] = self.now() + 3 * DAY_S
            self._emit("invoice.payment_failed", invoice)
            return self.events[first:]

    def pay_invoice(self, invoice_id: str) -> list[Obj]:
        """A retried charge succeeds: the invoice is paid and the subscription active again."""
        with self._lock:
            first = len(self.events)
            invoice = self._get(invoice_id, "invoice")
            sub_id = invoice["parent"]["subscription_details"]["subscription"]
            sub = self._get(sub_id, "subscription")
            price = self.prices[sub["items"]["data"][0]["price"]["id"]]
            invoice.update(
                status="paid",
                amount_paid=invoice["amount_due"],
                attempt_count=invoice["attempt_count"] + 1,
                next_payment_attempt=None,
            )
            self._pay(invoice, sub["customer"], price)
            sub["status"] = "active"
            self._emit("invoice.paid", invoice)
            self._emit("customer.subscription.updated", sub)
            return self.events[first:]

    def refund(self, charge_id: str, amount: int | None = None) -> list[Obj]:
        """Refund ``amount`` more cents (all that is left when None); Stripe's
        ``amount_refunded`` is the running total."""
        with self._lock:
            first = len(self.events)
            charge = self._get(charge_id, "charge")
            left = charge["amount"] - charge["amount_refunded"]
            amount = left if amount is None else amount
            if not 0 < amount <= left:
                raise StripeError(400, "Refund amount is greater than the unrefunded amount")
            total = charge["amount_refunded"] + amount
            charge.update(refunded=total == charge["amount"], amount_refunded=total)
            self._emit("charge.refunded", charge)
            return self.events[first:]

    def _subscription(self, session: Obj, price: Price) -> Obj:
        sub = self._store(
            "sub",
            {
                "object": "subscription",
                "customer": session["customer"],
                "status": "active",
                "cancel_at_period_end": False,
                "canceled_at": None,
                "ended_at": None,
                "metadata": session["_subscription_metadata"],
                "latest_invoice": None,
            },
        )
        sub["items"] = {
            "object": "list",
            "data": [{"id": self._new_id("si"), "object": "subscription_item"}],
        }
        sub["items"]["data"][0]["price"] = {
            "id": price.id,
            "object": "price",
            "unit_amount": price.unit_amount,
            "currency": price.currency,
            "recurring": {"interval": price.interval},
        }
        start = self.now()
        self._set_period(sub, start, start + interval_s(price))
        return sub

    def _advance(self, sub: Obj, price: Price) -> None:
        start = sub["current_period_end"]
        self._set_period(sub, start, start + interval_s(price))

    @staticmethod
    def _set_period(sub: Obj, start: int, end: int) -> None:
        # API versions since 2025 keep the period on the item; older ones on the subscription.
        sub.update(current_period_start=start, current_period_end=end)
        sub["items"]["data"][0].update(current_period_start=start, current_period_end=end)

    def _invoice(self, sub: Obj, price: Price, *, paid: bool, reason: str) -> Obj:
        """The invoice of the subscription's current period, as Stripe bills it in advance:
        its line covers the new period, while the invoice's own ``period_start/period_end``
        is the usage period before it (both the creation time for the first invoice)."""
        start, end = sub["current_period_start"], sub["current_period_end"]
        usage = (
            (self.now(), self.now())
            if reason == "subscription_create"
            else (
                start - interval_s(price),
                start,
            )
        )
        invoice = self._store(
            "in",
            {
                "object": "invoice",
                "customer": sub["customer"],
                "parent": {
                    "type": "subscription_details",
                    "subscription_details": {"subscription": sub["id"]},
                },
                "status": "paid" if paid else "open",
                "amount_due": price.unit_amount,
                "amount_paid": price.unit_amount if paid else 0,
                "currency": price.currency,
                "attempt_count": 1,
                "period_start": usage[0],
                "period_end": usage[1],
                "lines": {
                    "object": "list",
                    "data": [
                        {
                            "id": self._new_id("il"),
                            "object": "line_item",
                            "amount": price.unit_amount,
                            "period": {"start": start, "end": end},
                            "pricing": {"price_details": {"price": price.id}},
                        }
                    ],
                },
                "payments": {"object": "list", "data": []},
                "billing_reason": reason,
            },
        )
        invoice["hosted_invoice_url"] = f"{self.url}/invoices/{invoice['id']}"
        invoice["next_payment_attempt"] = None if paid else invoice["created"] + 3 * DAY_S
        sub["latest_invoice"] = invoice["id"]
        if paid:
            self._pay(invoice, sub["customer"], price)
        return invoice

    def _pay(self, invoice: Obj, customer: str, price: Price) -> None:
        """The charge that paid ``invoice``. Since API 2025-03 neither the invoice nor the
        charge names the other: the invoice lists its payment intent under ``payments``."""
        intent = self._new_id("pi")
        self._charge(customer, price, intent)
        invoice["payments"]["data"].append(
            {
                "id": self._new_id("inpay"),
                "object": "invoice_payment",
                "invoice": invoice["id"],
                "status": "paid",
                "payment": {"type": "payment_intent", "payment_intent": intent},
            }
        )

    def _charge(self, customer: str, price: Price, intent: str) -> Obj:
        charge = self._store(
            "ch",
            {
                "object": "charge",
                "customer": customer,
                "amount": price.unit_amount,
                "amount_refunded": 0,
                "refunded": False,
                "currency": price.currency,
                "payment_intent": intent,
                "paid": True,
                "status": "succeeded",
            },
        )
        charge["receipt_url"] = f"{self.url}/receipts/{charge['id']}"
        return charge

    # --- events ----------------------------------------------------------------------------
    def charges_of(self, customer_id: str) -> list[Obj]:
        return [
            o
            for o in self.objects.values()
            if o["object"] == "charge" and o["customer"] == customer_id
        ]

    def _emit(self, kind: str, obj: Obj) -> Obj:
        snapshot = public(obj)
        event = {
            "id": self._new_id("evt"),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": self.now(),
            "livemode": False,
            "pending_webhooks": 1,
            "type": kind,
            "data": {"object": snapshot},
        }
        self.events.append(event)
        if self.webhook_url is not None:
            self._outgoing.put(event)
        return event

    def signed(self, event: Obj, *, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers Stripe would post for ``event``."""
        payload = json.dumps(event, separators=(",", ":"))
        stamp = int(time.time()) if timestamp is None else timestamp
        return payload.encode(), {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(payload, self.webhook_secret, stamp),
        }

    def deliver(self, event: Obj, client: httpx.Client | None = None) -> httpx.Response:
        if self.webhook_url is None:
            raise RuntimeError("no webhook_url to deliver to")
        body, headers = self.signed(event)
        if client is None:
            response = httpx.post(self.webhook_url, content=body, headers=headers, timeout=30)
        else:
            response = client.post(self.webhook_url, content=body, headers=headers)
        self.deliveries.append((event["id"], response.status_code))
        return response

    def _deliver_loop(self) -> None:
        with httpx.Client(timeout=30) as client:
            while (event := self._outgoing.get()) is not None:
                # Stripe retries a failed delivery; a few quick tries are enough for tests.
                for _ in range(20):
                    try:
                        if self.deliver(event, client).status_code < 300:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.25)
                self._outgoing.task_done()
