"""An SMTP server on loopback (aiosmtpd) that keeps every message for the tests to read.

It can also misbehave on purpose: answer the next N messages with a temporary 451, or refuse
given recipients with a permanent 550, so that retries and permanent failures can be seen.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from sonata_testing.infra import free_port


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.lower() in self.sink.refused:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        with self.sink.lock:
            if self.sink.temporary_failures > 0:
                self.sink.temporary_failures -= 1
                return "451 4.3.0 try again later"
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.sink.lock:
            self.sink.messages.append(message)
        return "250 Message accepted"


class SmtpSink:
    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.refused: set[str] = set()
        self.temporary_failures = 0
        self.lock = threading.Lock()
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def received(self, to: str | None = None) -> list[EmailMessage]:
        with self.lock:
            found = list(self.messages)
        if to is None:
            return found
        return [m for m in found if to.lower() in str(m["To"]).lower()]

    async def wait_for(
        self, match: Callable[[EmailMessage], bool], what: str, within: float = 30.0
    ) -> EmailMessage:
        deadline = time.monotonic() + within
        while True:
            for message in self.received():
                if match(message):
                    return message
            if time.monotonic() > deadline:
                subjects = [str(m["Subject"]) for m in self.received()]
                raise AssertionError(f"no email {what} within {within}s; got {subjects}")
            await asyncio.sleep(0.05)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def body_html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    return part.get_content() if part is not None else ""
