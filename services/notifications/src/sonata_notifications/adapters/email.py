"""Email over SMTP with aiosmtplib; one-click unsubscribe headers per RFC 8058."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from sonata_notifications.domain.errors import PermanentSendError, TransientSendError
from sonata_notifications.service_layer.ports import Outgoing


class SmtpSender:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def build(self, message: Outgoing) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.to or ""
        mail["Subject"] = message.rendered.subject
        mail["Date"] = formatdate(usegmt=True)
        # Derived from event id + channel: a resend after a crash carries the same id, so the
        # receiving side can drop it as a duplicate.
        mail["Message-ID"] = f"<{message.idempotency_key.replace(':', '.')}@sonata.notifications>"
        mail["X-Sonata-Kind"] = message.kind
        unsubscribe = message.extra.get("unsubscribe_url")
        if unsubscribe:
            mail["List-Unsubscribe"] = f"<{unsubscribe}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(message.rendered.text)
        if message.rendered.html is not None:
            mail.add_alternative(message.rendered.html, subtype="html")
        return mail

    async def send(self, message: Outgoing) -> str:
        if not message.to:
            raise PermanentSendError("no email address")
        try:
            mail = self.build(message)
        except ValueError as exc:  # an address or subject that would inject headers
            raise PermanentSendError(f"cannot build the email: {exc}") from exc
        try:
            await aiosmtplib.send(
                mail,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentSendError(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentSendError(f"SMTP {exc.code}: {exc.message}") from exc
            raise TransientSendError(f"SMTP {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientSendError(f"SMTP server unreachable: {exc!r}") from exc
        return str(mail["Message-ID"])
