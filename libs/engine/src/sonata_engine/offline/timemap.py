"""A monotone map from score position (effective quarters) to performance time (seconds)."""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def increasing_subset(t: list[float]) -> list[int]:
    """Indices of a longest strictly increasing subsequence of ``t`` (patience sorting)."""
    tails: list[float] = []
    tail_idx: list[int] = []
    parent = [-1] * len(t)
    for i, v in enumerate(t):
        k = bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_idx.append(i)
        else:
            tails[k] = v
            tail_idx[k] = i
        parent[i] = tail_idx[k - 1] if k > 0 else -1
    out: list[int] = []
    i = tail_idx[-1] if tail_idx else -1
    while i >= 0:
        out.append(i)
        i = parent[i]
    return out[::-1]


class TimeMap:
    """Piecewise linear through anchor points, extrapolated with the tempo at each end."""

    __slots__ = ("_q", "_t", "spq_head", "spq_tail")

    def __init__(self, q: list[float], t: list[float], default_spq: float) -> None:
        keep = increasing_subset(t)
        qs = [q[i] for i in keep]
        ts = [t[i] for i in keep]
        self._q: FloatArray = np.asarray(qs, dtype=np.float64)
        self._t: FloatArray = np.asarray(ts, dtype=np.float64)
        self.spq_head = self._end_spq(0, default_spq)
        self.spq_tail = self._end_spq(-1, default_spq)

    @property
    def empty(self) -> bool:
        return len(self._q) == 0

    def _end_spq(self, end: int, default: float) -> float:
        n = len(self._q)
        if n < 2:
            return default
        span = min(n - 1, 4)
        if end == 0:
            dq, dt = self._q[span] - self._q[0], self._t[span] - self._t[0]
        else:
            dq, dt = self._q[-1] - self._q[-1 - span], self._t[-1] - self._t[-1 - span]
        return float(dt / dq) if dq > 0 and dt > 0 else default

    def __call__(self, q: FloatArray) -> FloatArray:
        if self.empty:
            return np.full(len(q), np.nan)
        out = np.interp(q, self._q, self._t)
        head = q < self._q[0]
        tail = q > self._q[-1]
        out[head] = self._t[0] - (self._q[0] - q[head]) * self.spq_head
        out[tail] = self._t[-1] + (q[tail] - self._q[-1]) * self.spq_tail
        return out

    def local_spq(self, q: FloatArray) -> FloatArray:
        """Seconds per quarter around each position (for tolerances)."""
        if len(self._q) < 2:
            return np.full(len(q), self.spq_head)
        k = np.clip(np.searchsorted(self._q, q), 1, len(self._q) - 1)
        dq = self._q[k] - self._q[k - 1]
        dt = self._t[k] - self._t[k - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            spq = np.where(dq > 0, dt / np.where(dq > 0, dq, 1.0), self.spq_head)
        return np.clip(spq, 0.05, 5.0)
