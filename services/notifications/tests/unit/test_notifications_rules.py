"""The pure rules: who gets what when, quiet hours, reminders, SMS status order, keywords."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sonata_notifications.domain.model import (
    KINDS,
    Budget,
    Kind,
    Preferences,
    QuietHours,
    decide,
    reminder_day,
    retry_delay,
    sms_keyword,
    sms_status_advances,
)

NOW = datetime(2026, 3, 10, 22, 30, tzinfo=UTC)  # 23:30 in Vienna, 18:30 in New York
ROOMY = Budget(per_hour=10)


def test_transactional_mail_ignores_unsubscribes_and_quiet_hours() -> None:
    prefs = Preferences(
        timezone="Europe/Vienna",
        disabled=frozenset({("password_reset", "email")}),
        quiet_hours=QuietHours(time(22), time(7)),
    )
    decision = decide(KINDS["password_reset"], "email", prefs, NOW, Budget(per_hour=0))
    assert (decision.status, decision.not_before) == ("queued", NOW)


def test_unsubscribed_pair_is_suppressed_but_other_channel_goes() -> None:
    prefs = Preferences(disabled=frozenset({("achievement", "email")}))
    assert decide(KINDS["achievement"], "email", prefs, NOW, ROOMY).reason == "unsubscribed"
    assert decide(KINDS["achievement"], "push", prefs, NOW, ROOMY).status == "queued"
    assert decide(KINDS["mastery"], "email", prefs, NOW, ROOMY).status == "queued"


def test_opt_in_kind_needs_the_opt_in() -> None:
    summary = KINDS["performance_summary"]
    assert decide(summary, "email", Preferences(), NOW, ROOMY).reason == "not opted in"
    opted = Preferences(enabled=frozenset({("performance_summary", "email")}))
    decision = decide(summary, "email", opted, NOW, ROOMY)
    assert (decision.status, decision.consent) == ("queued", "opt_in")


def test_sms_needs_consent_or_a_request_and_a_number_that_did_not_say_stop() -> None:
    code = KINDS["phone_verification"]
    # the code the user just asked for: the request is the consent
    asked = decide(code, "sms", Preferences(), NOW, ROOMY)
    assert (asked.status, asked.consent) == ("queued", "requested")
    blocked = decide(code, "sms", Preferences(sms_consent=True), NOW, ROOMY, sms_blocked=True)
    assert (blocked.status, blocked.reason) == ("suppressed", "the number replied STOP")
    # a text nobody asked for right now needs the standing opt-in
    reminder = Kind("practice_reminder", ("sms",))
    refused = decide(reminder, "sms", Preferences(), NOW, ROOMY)
    assert (refused.status, refused.consent, refused.reason) == (
        "suppressed",
        "none",
        "no consent to SMS",
    )
    assert decide(reminder, "sms", Preferences(sms_consent=True), NOW, ROOMY).status == "queued"
    # consent for texts says nothing about email
    mail = decide(KINDS["email_verification"], "email", Preferences(), NOW, ROOMY)
    assert mail.status == "queued"


def test_rate_limit_suppresses_past_the_hourly_budget() -> None:
    kind = KINDS["achievement"]
    assert decide(kind, "push", Preferences(), NOW, Budget(3, 2)).status == "queued"
    assert decide(kind, "push", Preferences(), NOW, Budget(3, 3)).reason == "rate limited"


def test_quiet_hours_spanning_midnight_defer_to_their_local_end() -> None:
    prefs = Preferences(timezone="Europe/Vienna", quiet_hours=QuietHours(time(22), time(7)))
    decision = decide(KINDS["achievement"], "email", prefs, NOW, ROOMY)
    assert decision.status == "queued"
    assert decision.not_before == datetime(2026, 3, 11, 6, 0, tzinfo=UTC)  # 07:00 Vienna
    new_york = Preferences(timezone="America/New_York", quiet_hours=QuietHours(time(22), time(7)))
    assert decide(KINDS["achievement"], "email", new_york, NOW, ROOMY).not_before == NOW


def test_reminder_is_due_from_the_local_time_on_unpractised_days() -> None:
    vienna = Preferences(timezone="Europe/Vienna", reminder_time=time(18))
    new_york = Preferences(timezone="America/New_York", reminder_time=time(18))
    early = datetime(2026, 3, 10, 16, 59, tzinfo=UTC)  # 17:59 Vienna, 12:59 New York
    assert reminder_day(early, vienna) is None
    assert reminder_day(NOW, vienna) == date(2026, 3, 10)
    assert reminder_day(NOW, new_york) == date(2026, 3, 10)
    assert reminder_day(datetime(2026, 3, 10, 21, 59, tzinfo=UTC), new_york) is None
    assert reminder_day(NOW, vienna, frozenset({date(2026, 3, 10)})) is None
    assert reminder_day(NOW, Preferences(timezone="Europe/Vienna")) is None


def test_sms_status_only_moves_forward() -> None:
    assert sms_status_advances(None, "queued")
    assert sms_status_advances("sent", "delivered")
    assert not sms_status_advances("delivered", "sent")
    assert not sms_status_advances("delivered", "failed")
    assert not sms_status_advances("sent", "nonsense")


def test_keywords_and_backoff() -> None:
    assert sms_keyword(" stop ") == "stop"
    assert sms_keyword("Stop all") == "stop"
    assert sms_keyword("unstop") == "start"
    assert sms_keyword("help") == "help"
    assert sms_keyword("stop it please") is None
    delays = [retry_delay(n, 5.0, 60.0).total_seconds() for n in (1, 2, 3, 4, 5)]
    assert delays == [5.0, 10.0, 20.0, 40.0, 60.0]
