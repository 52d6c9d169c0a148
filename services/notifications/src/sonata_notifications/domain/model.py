"""What is sent to whom, when it may go out, and how delivery states move. Pure rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Channel = Literal["email", "sms", "push"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "push")
Status = Literal["queued", "sending", "sent", "failed", "suppressed"]


@dataclass(frozen=True)
class Kind:
    name: str
    channels: tuple[Channel, ...]  # the first one is the kind's main channel
    # Account, security and billing messages: the law and the user expect them whatever the
    # preferences say, so they skip unsubscribe, quiet hours and rate limits.
    transactional: bool = False
    opt_in: bool = False  # off until the user turns it on
    # Sent because the user just asked for it on that address (a verification code): the
    # request is the consent, so no standing opt-in to the channel is needed.
    requested: bool = False


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("welcome", ("email",), transactional=True),
        Kind("email_verification", ("email",), transactional=True),
        Kind("phone_verification", ("sms",), transactional=True, requested=True),
        Kind("password_reset", ("email",), transactional=True),
        Kind("performance_summary", ("email", "push"), opt_in=True),
        Kind("achievement", ("email", "push")),
        Kind("mastery", ("email", "push")),
        Kind("streak_at_risk", ("push", "email")),
        Kind("practice_reminder", ("email", "push")),
        Kind("assignment_created", ("email", "push")),
        Kind("assignment_due", ("email", "push")),
        Kind("payment_receipt", ("email",), transactional=True),
        Kind("payment_failed", ("email",), transactional=True),
        Kind("subscription_changed", ("email",), transactional=True),
    )
}


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time  # may be earlier than start: the window then spans midnight

    def ends_after(self, now: datetime, tz: ZoneInfo) -> datetime | None:
        """The UTC instant the window ends if ``now`` falls inside it, else None."""
        local = now.astimezone(tz)
        t = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            inside = self.start <= t < self.end
        else:
            inside = t >= self.start or t < self.end
        if not inside:
            return None
        end_day = local.date() if t < self.end else local.date() + timedelta(days=1)
        return datetime.combine(end_day, self.end, tzinfo=tz).astimezone(now.tzinfo)


@dataclass(frozen=True)
class Preferences:
    """What the user asked for; defaults send every non-opt-in kind on every reachable channel."""

    timezone: str = "UTC"
    disabled: frozenset[tuple[str, Channel]] = frozenset()
    enabled: frozenset[tuple[str, Channel]] = frozenset()  # opt-in kinds turned on
    quiet_hours: QuietHours | None = None
    sms_consent: bool = False
    reminder_time: time | None = None

    def wants(self, kind: Kind, channel: Channel) -> bool:
        if (kind.name, channel) in self.disabled:
            return False
        return not kind.opt_in or (kind.name, channel) in self.enabled


@dataclass(frozen=True)
class Decision:
    status: Literal["queued", "suppressed"]
    consent: str  # why we may send it: recorded on the notification
    not_before: datetime
    reason: str | None = None


@dataclass(frozen=True)
class Budget:
    """The per-user rate limit on non-transactional messages, per channel and hour."""

    per_hour: int
    sent_last_hour: int = 0


def decide(
    kind: Kind,
    channel: Channel,
    prefs: Preferences,
    now: datetime,
    budget: Budget,
    *,
    sms_blocked: bool = False,
) -> Decision:
    """Whether a notification goes out on ``channel`` now, later, or not at all.

    Nothing goes to a number that replied STOP; no text goes out without the user's opt-in to
    SMS, except a verification code they just asked for on that number."""
    if channel == "sms" and sms_blocked:
        return Decision("suppressed", "none", now, "the number replied STOP")
    if channel == "sms" and kind.requested:
        return Decision("queued", "requested", now)
    if channel == "sms" and not prefs.sms_consent:
        return Decision("suppressed", "none", now, "no consent to SMS")
    if kind.transactional:
        return Decision("queued", "transactional", now)
    if not prefs.wants(kind, channel):
        why = "not opted in" if kind.opt_in else "unsubscribed"
        return Decision("suppressed", "none", now, why)
    if budget.sent_last_hour >= budget.per_hour:
        return Decision("suppressed", "preferences", now, "rate limited")
    consent = "opt_in" if kind.opt_in else "preferences"
    if prefs.quiet_hours is not None:
        until = prefs.quiet_hours.ends_after(now, zone(prefs.timezone))
        if until is not None:
            return Decision("queued", consent, until, "deferred by quiet hours")
    return Decision("queued", consent, now)


def reminder_day(
    now: datetime, prefs: Preferences, practised: frozenset[date] = frozenset()
) -> date | None:
    """The learner's local day a practice reminder is due for, if one is due at ``now``."""
    if prefs.reminder_time is None:
        return None
    local = now.astimezone(zone(prefs.timezone))
    if local.time().replace(tzinfo=None) < prefs.reminder_time:
        return None
    return None if local.date() in practised else local.date()


def local_day(instant: datetime, timezone: str | None) -> date:
    return instant.astimezone(zone(timezone)).date()


def retry_delay(attempt: int, base_s: float, cap_s: float) -> timedelta:
    """Exponential backoff after the ``attempt``-th failed try (1-based)."""
    return timedelta(seconds=min(cap_s, base_s * 2 ** (attempt - 1)))


# Twilio's message statuses by how far along they are; callbacks may arrive out of order.
SMS_PROGRESS: dict[str, int] = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}


def sms_status_advances(current: str | None, new: str) -> bool:
    """A status callback may only move a message forward."""
    if new not in SMS_PROGRESS:
        return False
    return SMS_PROGRESS[new] > SMS_PROGRESS.get(current or "", 0)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


# The keywords carriers and Twilio treat as opt-out, opt-in and help requests.
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def sms_keyword(body: str) -> Literal["stop", "start", "help"] | None:
    word = " ".join(body.strip().upper().split())
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None
