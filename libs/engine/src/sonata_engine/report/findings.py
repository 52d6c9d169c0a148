"""The few most useful things to tell the learner, ranked by how many notes they touch.

Impact is measured in notes: a missed or wrong note counts 1, an extra 0.5, and a timing,
tempo or articulation finding counts the notes it covers scaled by how far off they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from sonata_engine.report.model import Finding
from sonata_engine.report.reasons import pitch_name
from sonata_engine.types import SessionOptions

MAX_FINDINGS = 6
MAX_RUN = 4  # bars one finding may span
TEMPO_SHIFT = 0.12  # a bar this much faster or slower than the median is a tempo finding
SLOW_TARGET = 0.85  # below this share of the practice tempo the whole take is "slow"


def _runs(flags: npt.NDArray[np.bool_]) -> Iterator[tuple[int, int]]:
    """(first, last) positions of consecutive True entries, at most MAX_RUN long."""
    k, n = 0, len(flags)
    while k < n:
        if not flags[k]:
            k += 1
            continue
        first = k
        while k + 1 < n and flags[k + 1] and k + 1 - first < MAX_RUN:
            k += 1
        yield first, k
        k += 1


def _bars_text(first: int, last: int) -> str:
    return f"bar {first}" if first == last else f"bars {first}-{last}"


def find(
    rows: npt.NDArray[np.void],
    bars: npt.NDArray[np.void],
    tol: float,
    summary: dict[str, Any],
    options: SessionOptions,
) -> list[Finding]:
    out: list[Finding] = []
    out += _count_findings(rows, bars)
    if options.mode != "wait":
        out += _timing_runs(bars, tol)
        out += _tempo_runs(bars)
        out += _hand_beat(rows, tol)
        out += _slow_take(summary, bars)
    out += _articulation_runs(bars)
    out.sort(key=lambda f: -f.impact)
    return out[:MAX_FINDINGS]


def _count_findings(rows: npt.NDArray[np.void], bars: npt.NDArray[np.void]) -> list[Finding]:
    out = []
    number = bars["number"]
    scoped = rows[rows["in_scope"]]
    for field, verb, weight in (
        ("missed", "missed {n} note{s} in {bars}", 1.0),
        ("wrong_pitch", "played {n} wrong note{s} in {bars}", 1.0),
        ("extra", "played {n} extra note{s} in {bars}", 0.5),
    ):
        for a, b in _runs(bars[field] > 0):
            n = int(bars[field][a : b + 1].sum())
            first, last = int(number[a]), int(number[b])
            facts: dict[str, Any] = {"notes": n}
            in_run = scoped[
                (scoped["kind"] == field)
                & np.isin(scoped["measure_index"], bars["index"][a : b + 1])
            ]
            if field == "wrong_pitch":
                facts["examples"] = [
                    f"{pitch_name(p)} for {pitch_name(e)}"
                    for p, e in zip(in_run["pitch"][:3], in_run["expected_pitch"][:3], strict=True)
                ]
            facts["ids"] = [
                str(x) for x in (in_run["perf_id"] if field == "extra" else in_run["score_id"])
            ][:10]
            text = verb.format(n=n, s="" if n == 1 else "s", bars=_bars_text(first, last))
            out.append(Finding(text, field, first, last, n * weight, facts))
    return out


def _timing_runs(bars: npt.NDArray[np.void], tol: float) -> list[Finding]:
    out = []
    dev = bars["timing_ms"]
    counted = bars["correct"] + bars["wrong_pitch"]
    for sign, word in ((-1.0, "rushed"), (1.0, "dragged")):
        flags = np.isfinite(dev) & (sign * dev > tol / 2.0) & (counted >= 2)
        for a, b in _runs(flags):
            w = counted[a : b + 1]
            mean = float(np.average(dev[a : b + 1], weights=w))
            first, last = int(bars["number"][a]), int(bars["number"][b])
            text = f"{_bars_text(first, last)} {word} by {abs(mean):.0f} ms on average"
            impact = float(w.sum()) * min(abs(mean) / tol, 3.0) * 0.3
            facts = {"mean_ms": round(mean, 1), "notes": int(w.sum()), "tolerance_ms": tol}
            out.append(Finding(text, word, first, last, impact, facts))
    return out


def _tempo_runs(bars: npt.NDArray[np.void]) -> list[Finding]:
    bpm = bars["tempo_bpm"]
    ok = np.isfinite(bpm)
    if ok.sum() < 3:
        return []
    median = float(np.median(bpm[ok]))
    out = []
    for sign, word in ((1.0, "sped up to"), (-1.0, "slowed down to")):
        flags = ok & (sign * (bpm / median - 1.0) > TEMPO_SHIFT)
        for a, b in _runs(flags):
            mean = float(np.mean(bpm[a : b + 1]))
            first, last = int(bars["number"][a]), int(bars["number"][b])
            notes = int(bars["expected"][a : b + 1].sum())
            text = f"{_bars_text(first, last)} {word} {mean:.0f} bpm (your usual {median:.0f} bpm)"
            impact = notes * min(abs(mean / median - 1.0) / TEMPO_SHIFT, 3.0) * 0.2
            facts = {"bpm": round(mean, 1), "median_bpm": round(median, 1), "notes": notes}
            out.append(Finding(text, "tempo", first, last, impact, facts))
    return out


def _hand_beat(rows: npt.NDArray[np.void], tol: float) -> list[Finding]:
    """A hand steadily early or late on one beat of the bar ("left hand late on beat 1"); when
    both hands are, one finding for both."""
    timed = rows[np.isfinite(rows["timing_ms"]) & (rows["hand"] >= 0)]
    timed = timed[np.abs(timed["beat"] - np.round(timed["beat"])) < 1e-3]
    flagged: dict[tuple[float, str], list[npt.NDArray[np.void]]] = {}
    for hand in (0, 1):
        for beat in np.unique(np.round(timed["beat"][timed["hand"] == hand])):
            sel = timed[(timed["hand"] == hand) & (np.round(timed["beat"]) == beat)]
            mean = float(np.mean(sel["timing_ms"])) if len(sel) else 0.0
            if len(sel) >= 4 and abs(mean) > tol / 2.0:
                flagged.setdefault((float(beat), "late" if mean > 0 else "early"), []).append(sel)
    out = []
    for (beat, word), parts in flagged.items():
        sel = np.concatenate(parts)
        hands = sorted({int(h) for h in sel["hand"]})
        who = "both hands" if len(hands) == 2 else ("right hand" if hands == [0] else "left hand")
        mean = float(np.mean(sel["timing_ms"]))
        text = f"{who} {word} on beat {int(beat)} by {abs(mean):.0f} ms on average"
        first, last = int(sel["measure"].min()), int(sel["measure"].max())
        impact = len(sel) * min(abs(mean) / tol, 3.0) * 0.3
        facts = {"mean_ms": round(mean, 1), "notes": len(sel), "hands": hands, "beat": beat}
        out.append(Finding(text, f"hand_{word}", first, last, impact, facts))
    return out


def _slow_take(summary: dict[str, Any], bars: npt.NDArray[np.void]) -> list[Finding]:
    bpm, target = float(summary["tempo_bpm"]), float(summary["target_bpm"])
    if not (np.isfinite(bpm) and target > 0 and bpm < SLOW_TARGET * target) or len(bars) == 0:
        return []
    text = (
        f"played at {bpm:.0f} bpm, {100 * bpm / target:.0f}% of the target tempo {target:.0f} bpm"
    )
    facts = {"bpm": round(bpm, 1), "target_bpm": round(target, 1)}
    first, last = int(bars["number"][0]), int(bars["number"][-1])
    return [Finding(text, "slow", first, last, 2.0, facts)]


def _articulation_runs(bars: npt.NDArray[np.void]) -> list[Finding]:
    out = []
    for a, b in _runs(bars["articulation"] == "staccato"):
        ratio = float(np.nanmean(bars["duration_ratio"][a : b + 1]))
        first, last = int(bars["number"][a]), int(bars["number"][b])
        notes = int(bars["correct"][a : b + 1].sum())
        text = (
            f"notes in {_bars_text(first, last)} sounded only {100 * ratio:.0f}% of their written "
            "length (staccato)"
        )
        facts = {"duration_ratio": round(ratio, 2), "notes": notes}
        out.append(Finding(text, "articulation", first, last, notes * 0.2, facts))
    return out
