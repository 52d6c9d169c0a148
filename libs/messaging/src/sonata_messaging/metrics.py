"""Prometheus figures of the event bus, labelled by the service that owns the process."""

from prometheus_client import Counter, Gauge

OUTBOX_OLDEST_AGE = Gauge(
    "sonata_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest outbox row not yet confirmed by the broker (0 when none).",
    ["service"],
)
EVENTS_PUBLISHED = Counter(
    "sonata_events_published_total", "Events confirmed by the broker.", ["service", "event"]
)
PUBLISH_FAILED = Counter(
    "sonata_events_publish_failed_total", "Relay attempts that failed on the broker.", ["service"]
)
EVENTS_CONSUMED = Counter(
    "sonata_events_consumed_total",
    "Events applied by a consumer (duplicates counted with outcome=duplicate).",
    ["service", "event", "outcome"],
)
EVENTS_FAILED = Counter(
    "sonata_events_failed_total", "Handler attempts that raised.", ["service", "event"]
)
EVENTS_DEAD_LETTERED = Counter(
    "sonata_events_dead_lettered_total",
    "Messages rejected to the service's dead-letter queue.",
    ["service", "reason"],
)
# Why a message goes to <service>.dead (the `reason` label above).
DEAD_LETTER_REASONS = ("unknown_event", "invalid_body", "no_handler", "handler_failed")
DEAD_LETTER_DEPTH = Gauge(
    "sonata_dead_letter_queue_messages",
    "Messages waiting in the service's dead-letter queue <service>.dead (read every few s).",
    ["service", "queue"],
)
