"""What a user (or a number texting us) changes: preferences, unsubscribes, SMS consent."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, time

from sonata_notifications.domain.model import (
    SMS_PROGRESS,
    Channel,
    Preferences,
    QuietHours,
    sms_keyword,
    sms_status_advances,
)
from sonata_notifications.service_layer.ports import Store

HELP_REPLY = (
    "Sonata practice notifications. Reply STOP to stop all texts, START to receive them again. "
    "Help: support@sonata.local"
)
STOP_REPLY = "You will receive no more texts from Sonata. Reply START to receive them again."
START_REPLY = "Texts from Sonata are on again. Reply STOP to stop, HELP for help."


class UnknownLinkError(LookupError):
    pass


async def unsubscribe(store: Store, token: str, now: datetime) -> tuple[str, Channel]:
    """Turn off the link's kind on the link's channel only; works without logging in."""
    target = await store.unsubscribe_target(token)
    if target is None:
        raise UnknownLinkError("this unsubscribe link is unknown or its account was deleted")
    user_id, kind, channel = target
    prefs = await store.preferences(user_id)
    disabled = prefs.disabled | {(kind, channel)}
    enabled = prefs.enabled - {(kind, channel)}
    await store.save_preferences(
        user_id,
        Preferences(
            timezone=prefs.timezone,
            disabled=disabled,
            enabled=enabled,
            quiet_hours=prefs.quiet_hours,
            sms_consent=prefs.sms_consent,
            reminder_time=prefs.reminder_time,
        ),
        now,
    )
    return kind, channel


async def sms_inbound(store: Store, phone: str, body: str, now: datetime) -> str | None:
    """STOP, START and HELP from a number; the reply text, or None when nothing is due.

    STOP blocks the number and revokes the SMS consent of every user with that number (the
    app then shows SMS as off); START lifts the block and gives the consent back, as the
    person holding the phone asked for texts again."""
    keyword = sms_keyword(body)
    if keyword == "stop":
        await store.block_sms(phone, now)
        await _set_sms_consent(store, phone, False, now)
        return STOP_REPLY
    if keyword == "start":
        await store.unblock_sms(phone)
        await _set_sms_consent(store, phone, True, now)
        return START_REPLY
    if keyword == "help":
        return HELP_REPLY
    return None


async def _set_sms_consent(store: Store, phone: str, consent: bool, now: datetime) -> None:
    for user_id in await store.users_with_phone(phone):
        prefs = await store.preferences(user_id)
        if prefs.sms_consent != consent:
            await store.save_preferences(user_id, replace(prefs, sms_consent=consent), now)


@dataclass(frozen=True)
class PreferenceChanges:
    timezone: str | None = None
    quiet_hours: QuietHours | None = None
    clear_quiet_hours: bool = False
    reminder_time: time | None = None
    clear_reminder: bool = False
    sms_consent: bool | None = None
    channels: dict[str, dict[Channel, bool]] = field(default_factory=dict)


async def update_preferences(
    store: Store, user_id: str, changes: PreferenceChanges, now: datetime
) -> Preferences:
    prefs = await store.preferences(user_id)
    disabled, enabled = set(prefs.disabled), set(prefs.enabled)
    for kind, per_channel in changes.channels.items():
        for channel, on in per_channel.items():
            (enabled.add if on else enabled.discard)((kind, channel))
            (disabled.discard if on else disabled.add)((kind, channel))
    quiet = None if changes.clear_quiet_hours else (changes.quiet_hours or prefs.quiet_hours)
    reminder = None if changes.clear_reminder else (changes.reminder_time or prefs.reminder_time)
    updated = Preferences(
        timezone=changes.timezone or prefs.timezone,
        disabled=frozenset(disabled),
        enabled=frozenset(enabled),
        quiet_hours=quiet,
        sms_consent=prefs.sms_consent if changes.sms_consent is None else changes.sms_consent,
        reminder_time=reminder,
    )
    await store.save_preferences(user_id, updated, now)
    return updated


async def sms_status_changed(
    store: Store, sid: str, status: str, error_code: str | None, now: datetime
) -> bool:
    """Apply a Twilio status callback unless it would move the message backwards. Twilio may
    call back before the send is recorded here (its API answered, our write has not landed):
    such a status is held and applied by ``release_held_sms_statuses`` once it is."""
    applied = await _advance_sms(store, sid, status, error_code, now)
    if applied is None:
        await store.hold_sms_status(sid, status, error_code, now)
    return bool(applied)


async def release_held_sms_statuses(store: Store, sid: str, now: datetime) -> int:
    """Apply the callbacks held for ``sid`` once its send is recorded; how many moved it."""
    held = await store.held_sms_statuses(sid)
    if not held or not (await store.provider_status(sid))[0]:
        return 0
    moved = 0
    for status, error_code in sorted(held, key=lambda h: SMS_PROGRESS.get(h[0], 0)):
        moved += bool(await _advance_sms(store, sid, status, error_code, now))
    await store.drop_held_sms_statuses(sid)
    return moved


async def _advance_sms(
    store: Store, sid: str, status: str, error_code: str | None, now: datetime
) -> bool | None:
    """True: applied; False: stale or unknown status; None: no message has this sid yet."""
    for _ in range(5):
        found, current = await store.provider_status(sid)
        if not found:
            return None
        if not sms_status_advances(current, status):
            return False
        error = None
        if status in ("failed", "undelivered"):
            error = f"SMS {status}" + (f" (Twilio error {error_code})" if error_code else "")
        if await store.set_provider_status(sid, current, status, error, now):
            return True
    return False
