"""Email (HTML and text), SMS and push texts from Jinja2 templates, one entry per kind."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from sonata_notifications.domain.model import Channel, Rendered, zone

# kind -> (subject, body lines, meta field holding the action link, the link's label)
MESSAGES: dict[str, tuple[str, tuple[str, ...], str | None, str]] = {
    "welcome": (
        "Welcome to Sonata",
        (
            "Hello {{ display_name or 'there' }}, welcome to Sonata.",
            "Pick a piece, plug in your keyboard and play: we listen to every note.",
        ),
        None,
        "",
    ),
    "email_verification": (
        "Confirm your email address",
        (
            "Confirm this address to finish setting up your Sonata account.",
            "The link works until {{ expires_at | when(timezone) }}.",
        ),
        "verify_url",
        "Confirm my email address",
    ),
    "phone_verification": (
        "Your Sonata code",
        ("Your Sonata verification code is {{ code }}.",),
        None,
        "",
    ),
    "password_reset": (
        "Reset your password",
        (
            "Someone asked to reset your Sonata password. If it was not you, ignore this email.",
            "The link works until {{ expires_at | when(timezone) }}.",
        ),
        "reset_url",
        "Choose a new password",
    ),
    "performance_summary": (
        "Your performance scored {{ '%.2f' % overall_score }}",
        ("You finished a performance of {{ piece_id }}.",),
        None,
        "",
    ),
    "achievement": ("Achievement unlocked: {{ title }}", ("Well played: {{ title }}.",), None, ""),
    "mastery": (
        "You mastered {{ piece_id }}",
        (
            "You reached mastery on {{ piece_id }}"
            "{% if section %}, section {{ section }}{% endif %}.",
        ),
        None,
        "",
    ),
    "streak_at_risk": (
        "Keep your {{ days }}-day streak",
        ("A few minutes at the keyboard today keeps your {{ days }}-day streak alive.",),
        None,
        "",
    ),
    "practice_reminder": (
        "Time to practise",
        ("You have not played today yet. Ten minutes now make tomorrow easier.",),
        None,
        "",
    ),
    "assignment_created": (
        "New assignment: {{ piece_id }}",
        (
            "Your teacher assigned {{ piece_id }}"
            "{% if due_at %}, due {{ due_at | when(timezone) }}{% endif %}.",
        ),
        None,
        "",
    ),
    "assignment_due": (
        "Due soon: {{ piece_id }}",
        (
            "Your assignment on {{ piece_id }} is due {{ due_at | when(timezone) }}."
            " A run-through today helps.",
        ),
        None,
        "",
    ),
    "payment_receipt": (
        "Receipt: {{ '%.2f' % (amount_cents / 100) }} {{ currency | upper }}",
        (
            "Thank you. We received {{ '%.2f' % (amount_cents / 100) }} {{ currency | upper }}"
            " for {{ description }}.",
        ),
        "receipt_url",
        "View the receipt",
    ),
    "payment_failed": (
        "Your payment did not go through",
        (
            "We could not charge {{ '%.2f' % (amount_cents / 100) }} {{ currency | upper }}"
            " ({{ reason }}).",
            "{% if grace_until %}Your plan stays active until {{ grace_until | when(timezone) }};"
            " {% endif %}"
            "please update your payment method.",
        ),
        None,
        "",
    ),
    "subscription_changed": (
        "Your subscription: {{ plan }} ({{ status }})",
        (
            "Your subscription is now {{ plan }}, {{ status }}"
            "{% if cancel_at_period_end %}, ending with the current period{% endif %}.",
        ),
        None,
        "",
    ),
}


# Optional event fields, so a template never fails on an older event that lacks them.
OPTIONAL: dict[str, Any] = {
    "display_name": None,
    "section": None,
    "due_at": None,
    "grace_until": None,
    "cancel_at_period_end": False,
    "description": "your plan",
    "receipt_url": None,
    "days": 0,
    "timezone": None,
}


def when(value: str | None, timezone: str | None) -> str:
    """An instant from an event (ISO 8601) as the reader's clock shows it:
    `Thursday 24 December 2026, 18:00 (Europe/Vienna)`; UTC when their zone is unknown."""
    if not value:
        return ""
    try:
        instant = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return str(value)
    if instant.tzinfo is None:
        return str(value)
    tz = zone(timezone)
    local = instant.astimezone(tz)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} ({tz.key})"


class JinjaRenderer:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("sonata_notifications.adapters", "templates"),
            autoescape=select_autoescape(["html"], default_for_string=False),
            undefined=StrictUndefined,
        )
        self.text_env = Environment(undefined=StrictUndefined, autoescape=False)
        self.text_env.filters["when"] = when

    def render(
        self, kind: str, channel: Channel, meta: dict[str, Any], unsubscribe_url: str | None
    ) -> Rendered:
        subject_t, line_ts, action_field, action_label = MESSAGES[kind]
        values = {**OPTIONAL, **meta}
        subject = self.text_env.from_string(subject_t).render(values)
        lines = [self.text_env.from_string(t).render(values) for t in line_ts]
        action_url = values.get(action_field) if action_field else None
        if channel != "email":
            text = " ".join([*lines, action_url or ""]).strip()
            return Rendered(subject=subject, text=text)
        context = {
            "subject": subject,
            "lines": lines,
            "action_url": action_url,
            "action_label": action_label,
            "unsubscribe_url": unsubscribe_url,
        }
        return Rendered(
            subject=subject,
            text=self.env.get_template("email.txt.j2").render(context),
            html=self.env.get_template("email.html.j2").render(context),
        )
