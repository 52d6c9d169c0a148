"""The per-bar table: accuracy, timing by hand, tempo, dynamics, pedal and articulation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sonata_engine.report.model import BAR_ROW_DTYPE
from sonata_engine.report.timemap import TimeMap
from sonata_engine.types import PedalEvent, Performance, Score, SessionOptions

FloatArray = npt.NDArray[np.float64]
STACCATO_BELOW = 0.5  # sounding / written length
LEGATO_FROM = 0.85


def _mean_by(idx: npt.NDArray[np.int64], values: FloatArray, n: int) -> FloatArray:
    ok = np.isfinite(values)
    total = np.bincount(idx[ok], weights=values[ok], minlength=n)
    count = np.bincount(idx[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = total / count
    return out


def _median_by(idx: npt.NDArray[np.int64], values: FloatArray, n: int) -> FloatArray:
    out = np.full(n, np.nan)
    ok = np.isfinite(values)
    idx, values = idx[ok], values[ok]
    if len(idx) == 0:
        return out
    order = np.lexsort((values, idx))
    idx, values = idx[order], values[order]
    starts = np.flatnonzero(np.r_[True, np.diff(idx) > 0])
    counts = np.diff(np.r_[starts, len(idx)])
    out[idx[starts]] = values[starts + (counts - 1) // 2]
    return out


def bar_table(
    score: Score,
    performance: Performance,
    rows: npt.NDArray[np.void],
    tm: TimeMap,
    options: SessionOptions,
) -> npt.NDArray[np.void]:
    measures = [
        m
        for m in score.measures
        if (options.first_bar is None or m.number >= options.first_bar)
        and (options.last_bar is None or m.number <= options.last_bar)
    ]
    n_all = len(score.measures)
    keep = np.array([m.index for m in measures], dtype=np.int64)
    bars = np.zeros(n_all, dtype=BAR_ROW_DTYPE)
    bars["index"] = [m.index for m in score.measures]
    bars["number"] = [m.number for m in score.measures]
    start_q = np.array([m.start_q for m in score.measures], dtype=np.float64)
    end_q = np.array([m.end_q for m in score.measures], dtype=np.float64)
    bars["start_s"] = tm.time_at(start_q)
    bars["end_s"] = tm.time_at(end_q)

    scoped = rows[rows["in_scope"] & (rows["measure_index"] >= 0)]
    mi = scoped["measure_index"].astype(np.int64)
    kind = scoped["kind"]

    def count(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        return np.bincount(mi[mask], minlength=n_all)

    expected = kind != "extra"
    bars["expected"] = count(expected)
    bars["correct"] = count(kind == "correct")
    bars["wrong_pitch"] = count(kind == "wrong_pitch")
    bars["missed"] = count(kind == "missed")
    bars["extra"] = count(kind == "extra")
    with np.errstate(invalid="ignore", divide="ignore"):
        bars["accuracy"] = bars["correct"] / bars["expected"]
    timing = scoped["timing_ms"]
    bars["timing_ms"] = _mean_by(mi, timing, n_all)
    bars["timing_abs_ms"] = _mean_by(mi, np.abs(timing), n_all)
    for hand, name in ((0, "right"), (1, "left")):
        h = scoped["hand"] == hand
        bars[f"{name}_expected"] = count(expected & h)
        bars[f"{name}_correct"] = count((kind == "correct") & h)
        bars[f"{name}_timing_ms"] = _mean_by(mi, np.where(h, timing, np.nan), n_all)
    bars["tempo_bpm"] = _bar_tempo(tm, start_q, end_q)
    correct = kind == "correct"
    bars["velocity"] = _mean_by(mi, np.where(correct, scoped["velocity"], np.nan), n_all)
    bars["velocity_marked"] = _mean_by(
        mi, np.where(expected, scoped["expected_velocity"], np.nan).astype(np.float64), n_all
    )
    ratio = _median_by(mi, scoped["duration_ratio"], n_all)
    bars["duration_ratio"] = ratio
    bars["articulation"] = np.where(
        ~np.isfinite(ratio),
        "",
        np.where(
            ratio < STACCATO_BELOW, "staccato", np.where(ratio < LEGATO_FROM, "detached", "legato")
        ),
    )
    bars["legato_overlap_ms"] = _legato_overlap(score, performance, rows, n_all)
    down_s, changes = _pedal(performance.pedal, bars["start_s"], bars["end_s"])
    bars["pedal_down_s"] = down_s
    bars["pedal_changes"] = changes
    return bars[keep]


def _bar_tempo(tm: TimeMap, start_q: FloatArray, end_q: FloatArray) -> FloatArray:
    """Least-squares tempo through the chords played in each bar; a bar with a single chord
    takes the local tempo around it."""
    n = len(start_q)
    idx = np.clip(np.searchsorted(start_q, tm.q + 1e-9, side="right") - 1, 0, n - 1)
    q, t = tm.q, tm.observed
    c = np.bincount(idx, minlength=n).astype(np.float64)
    sq, st = np.bincount(idx, q, n), np.bincount(idx, t, n)
    sqq, sqt = np.bincount(idx, q * q, n), np.bincount(idx, q * t, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = sqq - sq * sq / c
        slope = (sqt - sq * st / c) / var
        bpm = 60.0 / slope
    local = 60.0 / tm.spq_at((start_q + end_q) / 2.0)
    fine = (c >= 2) & (var > 1e-9) & (slope > 0)
    out: FloatArray = np.where(fine, bpm, np.where(c >= 1, local, np.nan))
    return out


def _legato_overlap(
    score: Score, performance: Performance, rows: npt.NDArray[np.void], n: int
) -> FloatArray:
    """Mean overlap (ms) of consecutive notes of one voice that the score writes legato."""
    m = rows[(rows["kind"] == "correct") & rows["in_scope"]]
    if len(m) < 2:
        return np.full(n, np.nan)
    s_index = {sid: k for k, sid in enumerate(score.notes["id"].tolist())}
    p_index = {pid: k for k, pid in enumerate(performance.notes["id"].tolist())}
    s = score.notes[[s_index[i] for i in m["score_id"].tolist()]]
    p = performance.notes[[p_index[i] for i in m["perf_id"].tolist()]]
    order = np.lexsort((s["onset_q"], s["voice"], s["staff"]))
    s, p = s[order], p[order]
    same_voice = (s["staff"][1:] == s["staff"][:-1]) & (s["voice"][1:] == s["voice"][:-1])
    joined = np.abs(s["onset_q"][:-1] + s["duration_q"][:-1] - s["onset_q"][1:]) < 1e-6
    pair = same_voice & joined & ~s["is_grace"][:-1] & ~s["is_grace"][1:]
    overlap_ms = (p["offset_s"][:-1] - p["onset_s"][1:]) * 1000.0
    return _mean_by(s["measure_index"][:-1][pair].astype(np.int64), overlap_ms[pair], n)


def pedal_intervals(pedal: list[PedalEvent], end_s: float) -> tuple[FloatArray, FloatArray]:
    """(press, release) times of the sustain pedal; one still down is released at ``end_s``."""
    if not pedal:
        return np.zeros(0), np.zeros(0)
    times = np.array([e.time_s for e in pedal])
    down = np.array([e.value >= 64 for e in pedal])
    order = np.argsort(times, kind="stable")
    times, down = times[order], down[order]
    edges = times[np.flatnonzero(np.diff(np.r_[False, down]) != 0)]
    presses = edges[0::2]
    tail = np.full(len(presses) - len(edges[1::2]), max(end_s, float(times[-1])))
    return presses, np.r_[edges[1::2], tail]


def sounding_offsets(offset_s: FloatArray, presses: FloatArray, releases: FloatArray) -> FloatArray:
    """When each note stops sounding: at its key release, or later if the pedal holds it."""
    if len(presses) == 0:
        return offset_s.copy()
    k = np.clip(np.searchsorted(presses, offset_s, side="right") - 1, 0, None)
    held = (presses[k] <= offset_s) & (releases[k] > offset_s)
    out: FloatArray = np.where(held, releases[k], offset_s)
    return out


def _pedal(
    pedal: list[PedalEvent], start_s: FloatArray, end_s: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Seconds the sustain pedal was down within each bar, and how often it went down."""
    n = len(start_s)
    presses, releases = pedal_intervals(pedal, float(end_s.max()) if n else 0.0)
    if len(presses) == 0:
        return np.zeros(n), np.zeros(n, dtype=np.int64)
    # Pedal-down seconds accumulated up to any time, piecewise linear between the edges.
    held = releases - presses
    before = np.concatenate(([0.0], np.cumsum(held)[:-1]))
    xs = np.column_stack([presses, releases]).ravel()
    ys = np.column_stack([before, before + held]).ravel()
    down_s: FloatArray = np.interp(end_s, xs, ys) - np.interp(start_s, xs, ys)
    # A press within a millisecond of the barline belongs to the bar it opens.
    changes = np.searchsorted(presses, end_s - 1e-3) - np.searchsorted(presses, start_s - 1e-3)
    return down_s, changes.astype(np.int64)
