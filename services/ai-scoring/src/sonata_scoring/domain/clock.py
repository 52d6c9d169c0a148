"""Device clock calibration: NTP-style probes. Pure: the server's times are passed in."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    offset_s: float  # device clock minus server clock
    jitter_s: float  # spread of the per-probe offsets (median absolute deviation)
    rtt_s: float  # median round trip
    samples: int


@dataclass
class Calibration:
    probes: int
    sent: dict[int, float] = field(default_factory=dict)  # probe id -> server send time
    samples: list[tuple[float, float]] = field(default_factory=list)  # (offset, rtt)

    def probe(self, probe_id: int, server_now: float) -> None:
        self.sent[probe_id] = server_now

    def reply(self, probe_id: int, client_time: float, server_now: float) -> bool:
        """Record one answer; False for a probe never sent or already answered."""
        sent = self.sent.pop(probe_id, None)
        if sent is None:
            return False
        rtt = server_now - sent
        # the device stamped its answer about half a round trip after the probe left
        self.samples.append((client_time - (sent + rtt / 2), rtt))
        return True

    @property
    def done(self) -> bool:
        return len(self.samples) >= self.probes

    def estimate(self) -> ClockEstimate:
        # the fastest round trips carry the least queueing noise: trust the better half
        best = sorted(self.samples, key=lambda s: s[1])[: max(1, len(self.samples) // 2 + 1)]
        offsets = [s[0] for s in best]
        offset = statistics.median(offsets)
        jitter = statistics.median(abs(o - offset) for o in (s[0] for s in self.samples))
        return ClockEstimate(
            offset_s=offset,
            jitter_s=jitter,
            rtt_s=statistics.median(s[1] for s in self.samples),
            samples=len(self.samples),
        )
