"""Times in messages read in the reader's own zone, not as raw ISO strings."""

from __future__ import annotations

from sonata_notifications.adapters.rendering import JinjaRenderer, when

RENDERER = JinjaRenderer()


def test_times_are_shown_on_the_readers_clock() -> None:
    assert when("2026-12-24T17:00:00Z", "Europe/Vienna") == (
        "Thursday 24 December 2026, 18:00 (Europe/Vienna)"
    )
    assert when("2026-07-01T03:30:00+00:00", "America/New_York") == (
        "Tuesday 30 June 2026, 23:30 (America/New_York)"
    )
    # unknown zone: UTC, and said so
    assert when("2026-12-24T17:00:00Z", None) == "Thursday 24 December 2026, 17:00 (UTC)"
    assert when("2026-12-24T17:00:00Z", "Mars/Olympus") == "Thursday 24 December 2026, 17:00 (UTC)"
    assert when(None, "UTC") == ""


def test_the_verification_email_says_until_when_in_the_readers_zone() -> None:
    meta = {
        "verify_url": "https://sonata.example/verify-email?token=t",
        "expires_at": "2026-03-10T17:30:00Z",
        "timezone": "America/New_York",
    }
    mail = RENDERER.render("email_verification", "email", meta, None)
    assert "The link works until Tuesday 10 March 2026, 13:30 (America/New_York)." in mail.text
    assert "13:30 (America/New_York)" in (mail.html or "")
    assert "2026-03-10T17:30" not in mail.text


def test_dunning_and_assignments_show_their_dates_and_never_fail_without_one() -> None:
    failed = {
        "amount_cents": 999,
        "currency": "eur",
        "reason": "card_declined",
        "grace_until": "2026-12-31T23:00:00Z",
        "timezone": "Europe/Vienna",
    }
    text = RENDERER.render("payment_failed", "email", failed, None).text
    assert "active until Friday 1 January 2027, 00:00 (Europe/Vienna); please update" in text
    no_grace = {k: v for k, v in failed.items() if k != "grace_until"}
    assert "Your plan stays" not in RENDERER.render("payment_failed", "email", no_grace, None).text
    push = RENDERER.render(
        "assignment_due", "push", {"piece_id": "minuet", "due_at": "2026-12-24T17:00:00Z"}, None
    )
    assert push.text.startswith("Your assignment on minuet is due Thursday 24 December 2026, 17:00")
