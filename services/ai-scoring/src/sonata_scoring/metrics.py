"""ai-scoring's Prometheus figures (served on /metrics with the kit's HTTP ones).

Children of labelled metrics are made once here, so the hot path never looks a label up.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LIVE_SESSIONS = Gauge("sonata_ws_live_sessions", "live sessions with a connection on this process")
WS_CLOSED = Counter("sonata_ws_closed_total", "WebSocket connections closed, by code", ["code"])


class LiveJudgements(Collector):
    """`sonata_engine_notes_total` and the `sonata_engine_judgement_seconds` histogram, kept as
    plain numbers: updated once per notes message by the event loop alone, so the hot path
    takes no lock and walks no bucket list (a prometheus_client Histogram does both). The
    histogram counts notes: each note-on of a message waited the message's time for its
    judgement, so a chord of three is three observations of it."""

    BOUNDS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)
    LE = (*(repr(b) for b in BOUNDS), "+Inf")  # as Prometheus writes them: 5e-05, 0.0001, ...

    def __init__(self) -> None:
        self.notes = 0
        self.seconds = 0.0
        self.counts = [0] * (len(self.BOUNDS) + 1)  # the last one is above every bound

    def observe(self, seconds: float, notes: int) -> None:
        """One notes message that took `seconds` and carried `notes` note-ons."""
        self.notes += notes
        self.seconds += seconds * notes
        self.counts[bisect_left(self.BOUNDS, seconds)] += notes

    def collect(self) -> Iterator[Metric]:
        counts, cumulative, buckets = list(self.counts), 0, []
        for le, count in zip(self.LE, counts, strict=True):
            cumulative += count
            buckets.append((le, float(cumulative)))
        yield CounterMetricFamily(
            "sonata_engine_notes_total", "notes (note-ons) judged live", value=self.notes
        )
        yield HistogramMetricFamily(
            "sonata_engine_judgement_seconds",
            "server-side latency of each live note judged: from its notes message received to "
            "the judged frame queued",
            buckets=buckets,
            sum_value=self.seconds,
        )


JUDGEMENTS = LiveJudgements()
REGISTRY.register(JUDGEMENTS)

_COACH_SECONDS = Histogram(
    "sonata_coach_request_seconds",
    "one coach answer (feedback or chat), by the backend that worded it; a fallback after a "
    "failed model call is deterministic and its time includes the failed call",
    ["backend"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0),
)
COACH_SECONDS_OPENAI = _COACH_SECONDS.labels(backend="openai")
COACH_SECONDS_DETERMINISTIC = _COACH_SECONDS.labels(backend="deterministic")

_COACH_TOKENS = Counter(
    "sonata_coach_tokens_total", "language-model tokens the coach used, by kind", ["kind"]
)
COACH_TOKENS_INPUT = _COACH_TOKENS.labels(kind="input")
COACH_TOKENS_OUTPUT = _COACH_TOKENS.labels(kind="output")
COACH_COST_USD = Counter("sonata_coach_cost_usd_total", "what the coach's model calls cost, USD")
