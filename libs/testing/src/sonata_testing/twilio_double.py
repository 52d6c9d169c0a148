"""A local server speaking Twilio's Messages REST API, for the official client to talk to.

It keeps the messages it accepted, deduplicates by the ``I-Twilio-Idempotency-Token`` header,
refuses malformed numbers as Twilio does (400, code 21211), and sends status callbacks and
inbound texts to a service with a real ``X-Twilio-Signature`` computed by the official library.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from twilio.request_validator import RequestValidator

from sonata_testing.infra import free_port

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Messages\.json$")


@dataclass
class SentSms:
    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    idempotency_token: str | None
    params: dict[str, str] = field(default_factory=dict)


class TwilioDouble:
    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        port: int | None = None,
        on_message: Callable[[SentSms], None] | None = None,
    ) -> None:
        self.account_sid = account_sid or "AC" + uuid.uuid4().hex
        self.auth_token = auth_token or uuid.uuid4().hex
        self.port = port or free_port()
        self.on_message = on_message  # called with each message accepted, once
        self.url = f"http://127.0.0.1:{self.port}"
        self.messages: list[SentSms] = []
        self.requests = 0
        self.fail_next_with: list[int] = []  # statuses to answer the next creates with
        # (status, error code) called back for the next created message *before* the create is
        # answered, as Twilio sometimes does: the sender has not recorded the sid yet
        self.early_statuses: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> TwilioDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> TwilioDouble:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def signed_post(self, url: str, params: dict[str, str]) -> httpx.Response:
        """POST a form to ``url`` as Twilio does, signed with this account's auth token."""
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        return httpx.post(url, data=params, headers={"X-Twilio-Signature": signature})

    def send_status(self, sms: SentSms, status: str, error_code: str | None = None) -> int:
        assert sms.status_callback, "the message was sent without a status callback"
        params = {
            "MessageSid": sms.sid,
            "MessageStatus": status,
            "AccountSid": self.account_sid,
            "To": sms.to,
        }
        if error_code:
            params["ErrorCode"] = error_code
        return self.signed_post(sms.status_callback, params).status_code

    def _create(self, form: dict[str, str], token: str | None) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
            if self.fail_next_with:
                status = self.fail_next_with.pop(0)
                return status, {"code": 20500, "message": "Internal error", "status": status}
            for sms in self.messages:
                if token is not None and sms.idempotency_token == token:
                    return 201, self._resource(sms)
            to = form.get("To", "")
            if not E164.match(to):
                return 400, {
                    "code": 21211,
                    "message": f"The 'To' number {to} is not a valid phone number.",
                    "status": 400,
                }
            sms = SentSms(
                sid="SM" + uuid.uuid4().hex,
                to=to,
                from_=form.get("From", ""),
                body=form.get("Body", ""),
                status_callback=form.get("StatusCallback"),
                idempotency_token=token,
                params=form,
            )
            self.messages.append(sms)
            if self.on_message is not None:
                self.on_message(sms)
            return 201, self._resource(sms)

    def _resource(self, sms: SentSms) -> dict[str, Any]:
        return {
            "sid": sms.sid,
            "account_sid": self.account_sid,
            "to": sms.to,
            "from": sms.from_,
            "body": sms.body,
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sms.sid}.json",
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                match = MESSAGES_PATH.match(urlsplit(self.path).path)
                if match is None:
                    self._reply(404, {"code": 20404, "message": "not found", "status": 404})
                    return
                expected = base64.b64encode(
                    f"{double.account_sid}:{double.auth_token}".encode()
                ).decode()
                if (
                    match["sid"] != double.account_sid
                    or self.headers.get("Authorization") != f"Basic {expected}"
                ):
                    self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                status, body = double._create(form, self.headers.get("I-Twilio-Idempotency-Token"))
                if status == 201:
                    with double.lock:
                        early, double.early_statuses = double.early_statuses, []
                    sms = next(m for m in double.messages if m.sid == body["sid"])
                    for early_status, error_code in early:
                        double.send_status(sms, early_status, error_code)
                self._reply(status, body)

        return Handler
