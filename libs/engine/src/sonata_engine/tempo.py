"""The learner's own tempo, from the spacing of recently matched onset groups.

Each step between two matched groups gives one measurement of seconds per quarter. The estimate
is the weighted median (weight = quarters spanned) of the last few measurements in log space:
a pause or a fermata is one outlier and does not move it, while a real change of tempo wins the
median within two or three steps.
"""

from __future__ import annotations

import math
from collections import deque

WINDOW = 7
#: The estimate stays within this factor of the practice tempo either way (40 %-200 % and more).
RANGE = 4.0
#: A single step may not claim a tempo further than this factor from the current estimate.
STEP_CLAMP = 2.5


class TempoTracker:
    __slots__ = ("_hi", "_lo", "_log_spq", "_steps")

    def __init__(self, spq: float) -> None:
        self._log_spq = math.log(spq)
        self._lo = math.log(spq / RANGE)
        self._hi = math.log(spq * RANGE)
        self._steps: deque[tuple[float, float]] = deque(maxlen=WINDOW)

    def copy(self) -> TempoTracker:
        other = TempoTracker.__new__(TempoTracker)
        other._log_spq, other._lo, other._hi = self._log_spq, self._lo, self._hi
        other._steps = deque(self._steps, maxlen=WINDOW)
        return other

    @property
    def spq(self) -> float:
        """Seconds per quarter."""
        return math.exp(self._log_spq)

    @property
    def bpm(self) -> float:
        return 60.0 / self.spq

    @property
    def settled(self) -> bool:
        return len(self._steps) >= 2

    def observe(self, dt_s: float, dq: float) -> None:
        """One step: ``dt_s`` seconds between groups ``dq`` quarters apart."""
        if dq <= 1e-6 or dt_s <= 1e-4:
            return
        m = math.log(dt_s / dq)
        clamp = math.log(STEP_CLAMP) * (2.0 if len(self._steps) < 2 else 1.0)
        m = min(max(m, self._log_spq - clamp), self._log_spq + clamp)
        m = min(max(m, self._lo), self._hi)
        self._steps.append((m, min(dq, 2.0)))
        ordered = sorted(self._steps)
        half = sum(w for _, w in ordered) / 2.0
        acc = 0.0
        for value, w in ordered:
            acc += w
            if acc >= half:
                self._log_spq = value
                break
