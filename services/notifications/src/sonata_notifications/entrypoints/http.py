"""The user's side: preferences, push subscriptions, their notifications, unsubscribe links."""

from __future__ import annotations

import html
import ipaddress
from datetime import UTC, datetime, time
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pymongo.errors import DuplicateKeyError
from sonata_kit import (
    Conflict,
    CurrentPrincipal,
    NotFound,
    RuntimeDep,
    ServiceUnavailable,
    Unprocessable,
)
from sonata_messaging import Transaction

from sonata_notifications.adapters.documents import Notification, PushSubscription
from sonata_notifications.adapters.repository import MongoStore
from sonata_notifications.domain.model import KINDS, Preferences, QuietHours
from sonata_notifications.entrypoints.schemas import (
    NotificationOut,
    PreferencesIn,
    PreferencesOut,
    PushSubscriptionIn,
    QuietHoursIn,
)
from sonata_notifications.service_layer import account

router = APIRouter(prefix="/v1", tags=["notifications"])


def _out(prefs: Preferences) -> PreferencesOut:
    quiet = prefs.quiet_hours
    return PreferencesOut(
        timezone=prefs.timezone,
        quiet_hours=QuietHoursIn(
            start=quiet.start.strftime("%H:%M"), end=quiet.end.strftime("%H:%M")
        )
        if quiet
        else None,
        reminder_time=prefs.reminder_time.strftime("%H:%M") if prefs.reminder_time else None,
        sms_consent=prefs.sms_consent,
        channels={
            name: {channel: prefs.wants(kind, channel) for channel in kind.channels}
            for name, kind in KINDS.items()
            if not kind.transactional
        },
    )


@router.get("/preferences")
async def get_preferences(principal: CurrentPrincipal, runtime: RuntimeDep) -> PreferencesOut:
    return _out(await MongoStore(None).preferences(principal.user_id))


@router.put("/preferences")
async def put_preferences(
    body: PreferencesIn, principal: CurrentPrincipal, runtime: RuntimeDep
) -> PreferencesOut:
    q = body.quiet_hours
    changes = account.PreferenceChanges(
        timezone=body.timezone,
        quiet_hours=QuietHours(time.fromisoformat(q.start), time.fromisoformat(q.end))
        if q
        else None,
        clear_quiet_hours=body.clear_quiet_hours,
        reminder_time=time.fromisoformat(body.reminder_time) if body.reminder_time else None,
        clear_reminder=body.clear_reminder,
        sms_consent=body.sms_consent,
        channels=dict(body.channels),
    )

    async def use_case(tx: Transaction) -> Preferences:
        store = MongoStore(tx.session)
        return await account.update_preferences(
            store, principal.user_id, changes, datetime.now(UTC)
        )

    return _out(await runtime.transaction(use_case))


@router.get("/notifications")
async def list_notifications(
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[NotificationOut]:
    cursor = (
        Notification.get_pymongo_collection()
        .find({"user_id": principal.user_id})
        .sort("created_at", -1)
        .limit(limit)
    )
    return [
        NotificationOut(
            id=str(row["_id"]),
            kind=row["kind"],
            channel=row["channel"],
            to=row.get("to"),
            status=row["status"],
            error=row.get("error"),
            consent=row.get("consent", "transactional"),
            provider_status=row.get("provider_status"),
            attempts=row.get("attempts", 0),
            created_at=row["created_at"],
            sent_at=row.get("sent_at"),
        )
        async for row in cursor
    ]


@router.get("/push/public-key")
async def vapid_public_key(request: Request) -> dict[str, str]:
    key = request.app.state.settings.vapid_public_key
    if not key:
        raise ServiceUnavailable("web push is not configured", code="push_not_configured")
    return {"public_key": key}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_push_endpoint(endpoint: str, environment: str) -> None:
    """Push services are reached over https; plain http only to a local double in development
    and tests."""
    parts = urlsplit(endpoint)
    if not parts.hostname:
        raise Unprocessable("the push endpoint has no host", code="bad_push_endpoint")
    if parts.scheme == "https":
        return
    if environment in ("development", "test") and _loopback(parts.hostname):
        return
    raise Unprocessable("the push endpoint must be an https URL", code="bad_push_endpoint")


@router.post("/push/subscriptions", status_code=201)
async def subscribe_push(
    body: PushSubscriptionIn, principal: CurrentPrincipal, runtime: RuntimeDep, request: Request
) -> dict[str, str]:
    check_push_endpoint(body.endpoint, request.app.state.settings.environment)
    rows = PushSubscription.get_pymongo_collection()
    existing = await rows.find_one({"endpoint": body.endpoint})
    if existing is not None and existing["user_id"] != principal.user_id:
        raise Conflict("this browser is subscribed by another account", code="endpoint_taken")
    try:
        await rows.update_one(
            {"endpoint": body.endpoint},
            {
                "$set": {"p256dh": body.keys.p256dh, "auth": body.keys.auth},
                "$setOnInsert": {"user_id": principal.user_id, "created_at": datetime.now(UTC)},
            },
            upsert=True,
        )
    except DuplicateKeyError as exc:
        raise Conflict("subscribed concurrently; try again", code="endpoint_taken") from exc
    return {"status": "subscribed", "endpoint": body.endpoint}


@router.delete("/push/subscriptions", status_code=204)
async def unsubscribe_push(
    endpoint: Annotated[str, Query(max_length=2048)],
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
) -> Response:
    result = await PushSubscription.get_pymongo_collection().delete_one(
        {"endpoint": endpoint, "user_id": principal.user_id}
    )
    if result.deleted_count == 0:
        raise NotFound("no such push subscription for this account", code="no_subscription")
    return Response(status_code=204)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
        f"</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe_page(token: str, runtime: RuntimeDep) -> HTMLResponse:
    """A page with a button: link scanners follow GETs, so only the POST unsubscribes."""
    target = await MongoStore(None).unsubscribe_target(token)
    if target is None:
        return _page("Link not found", "<p>This unsubscribe link is unknown or expired.</p>", 404)
    _, kind, channel = target
    return _page(
        "Unsubscribe",
        f"<p>Stop {html.escape(kind.replace('_', ' '))} messages by {html.escape(channel)}?</p>"
        f'<form method="post"><button type="submit">Unsubscribe</button></form>',
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, runtime: RuntimeDep) -> HTMLResponse:
    """RFC 8058 one-click: mail clients POST ``List-Unsubscribe=One-Click`` here."""

    async def use_case(tx: Transaction) -> tuple[str, Any]:
        return await account.unsubscribe(MongoStore(tx.session), token, datetime.now(UTC))

    try:
        kind, channel = await runtime.transaction(use_case)
    except account.UnknownLinkError as exc:
        return _page("Link not found", f"<p>{html.escape(str(exc))}.</p>", 404)
    return _page(
        "Unsubscribed",
        f"<p>You will get no more {html.escape(kind.replace('_', ' '))} messages by "
        f"{html.escape(channel)}. Other messages are unchanged.</p>",
    )
