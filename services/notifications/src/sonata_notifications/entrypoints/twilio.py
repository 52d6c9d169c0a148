"""Twilio's webhooks: delivery status callbacks and inbound texts (STOP, START, HELP)."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from sonata_kit import Forbidden, RuntimeDep, ServiceUnavailable
from sonata_messaging import Transaction
from twilio.request_validator import RequestValidator

from sonata_notifications.adapters.repository import MongoStore
from sonata_notifications.service_layer import account

router = APIRouter(prefix="/v1/twilio", tags=["twilio"])


async def _verified_form(request: Request, path: str) -> dict[str, str]:
    """The form Twilio posted, after checking X-Twilio-Signature against our public URL."""
    settings = request.app.state.settings
    if settings.twilio_auth_token is None:
        raise ServiceUnavailable("SMS is not configured", code="sms_not_configured")
    form = {k: str(v) for k, v in (await request.form()).items()}
    # Twilio signs the URL it called, which is the public one, not the one we listen on.
    url = f"{settings.public_base_url.rstrip('/')}{path}"
    if request.url.query:
        url += f"?{request.url.query}"
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
        raise Forbidden("X-Twilio-Signature does not match", code="bad_signature")
    return form


@router.post("/status", status_code=204)
async def status_callback(request: Request, runtime: RuntimeDep) -> Response:
    form = await _verified_form(request, "/v1/twilio/status")
    sid, status = form.get("MessageSid"), form.get("MessageStatus")
    if sid and status:

        async def use_case(tx: Transaction) -> bool:
            return await account.sms_status_changed(
                MongoStore(tx.session), sid, status, form.get("ErrorCode"), datetime.now(UTC)
            )

        async def release(tx: Transaction) -> int:
            return await account.release_held_sms_statuses(
                MongoStore(tx.session), sid, datetime.now(UTC)
            )

        if not await runtime.transaction(use_case):
            # held (or stale): if the send was recorded meanwhile, after it looked for held
            # callbacks, apply it now rather than never
            await runtime.transaction(release)
    return Response(status_code=204)


@router.post("/inbound")
async def inbound(request: Request, runtime: RuntimeDep) -> Response:
    form = await _verified_form(request, "/v1/twilio/inbound")
    phone, body = form.get("From", ""), form.get("Body", "")

    async def use_case(tx: Transaction) -> str | None:
        return await account.sms_inbound(MongoStore(tx.session), phone, body, datetime.now(UTC))

    reply = await runtime.transaction(use_case) if phone else None
    twiml = (
        "<Response/>"
        if reply is None
        else f"<Response><Message>{escape(reply)}</Message></Response>"
    )
    return Response(f'<?xml version="1.0" encoding="UTF-8"?>{twiml}', media_type="application/xml")
