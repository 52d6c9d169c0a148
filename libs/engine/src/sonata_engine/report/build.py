"""build_report: one vectorised pass from an alignment to the report's tables and scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sonata_engine.errors import SessionStateError
from sonata_engine.report.bars import bar_table, pedal_intervals, sounding_offsets
from sonata_engine.report.findings import find
from sonata_engine.report.model import NOTE_ROW_DTYPE, Report
from sonata_engine.report.reasons import reasons
from sonata_engine.report.scoring import overall, subscores
from sonata_engine.report.timemap import TimeMap, fit_time_map
from sonata_engine.types import (
    AlignmentResult,
    Judgement,
    PedalEvent,
    Performance,
    Score,
    SessionOptions,
)

IntArray = npt.NDArray[np.int64]
_DEFAULT_OPTIONS = SessionOptions()


def timing_tolerance_ms(options: SessionOptions) -> float:
    """On-time window half-width: 120 ms at strictness 0, 75 ms at 0.5, 30 ms at 1."""
    strictness = min(1.0, max(0.0, options.strictness))
    return 30.0 + 90.0 * (1.0 - strictness)


def score_scope(score: Score, options: SessionOptions) -> npt.NDArray[np.bool_]:
    """Score notes the options expect: the chosen hand (unknown hands always) and bars."""
    notes = score.notes
    mask = np.ones(len(notes), dtype=bool)
    if options.hands != "both":
        mask &= (notes["hand"] == (0 if options.hands == "right" else 1)) | (notes["hand"] < 0)
    if options.first_bar is not None:
        mask &= notes["measure"] >= options.first_bar
    if options.last_bar is not None:
        mask &= notes["measure"] <= options.last_bar
    return mask


def _indices(ids: Sequence[str], index: dict[str, int], what: str) -> IntArray:
    try:
        return np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
    except KeyError as exc:
        raise SessionStateError(f"the alignment names {what} {exc.args[0]!r}, unknown") from exc


def _check_options(options: SessionOptions) -> None:
    if options.hands not in ("both", "right", "left"):
        raise SessionStateError(f"hands must be both, right or left, not {options.hands!r}")
    if options.mode not in ("performance", "wait"):
        raise SessionStateError(f"mode must be performance or wait, not {options.mode!r}")
    first, last = options.first_bar, options.last_bar
    if first is not None and last is not None and first > last:
        raise SessionStateError(f"bar range {first}-{last} runs backwards")


def _once(idx: IntArray, ids: npt.NDArray[np.str_], what: str) -> npt.NDArray[np.bool_]:
    """Which notes the alignment mentions; each may appear in it once at most."""
    counts = np.bincount(idx, minlength=len(ids))
    if (counts > 1).any():
        twice = str(ids[int(np.flatnonzero(counts > 1)[0])])
        raise SessionStateError(f"the alignment lists {what} {twice!r} more than once")
    seen: npt.NDArray[np.bool_] = counts > 0
    return seen


@dataclass(slots=True)
class _View:
    """The alignment as scored: each score note by its last playing; earlier ones are attempts."""

    m_s: IntArray
    m_p: IntArray
    w_s: IntArray
    w_p: IntArray
    d_s: IntArray
    x_p: IntArray
    r_s: IntArray  # attempts played over again later: score note ...
    r_p: IntArray  # ... performed note ...
    r_wrong: npt.NDArray[np.bool_]  # ... and whether it was a wrong pitch
    s_pass: dict[int, int]  # score note -> pass of its last mention
    p_pass: dict[int, int]  # performed note -> its pass


def _final_view(
    alignment: AlignmentResult,
    s_index: dict[str, int],
    p_index: dict[str, int],
    p_onset: npt.NDArray[np.float64],
) -> _View:
    passes: list[tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]]
    if alignment.passes:
        passes = [(p.matches, p.wrong_pitch, p.missed) for p in alignment.passes]
    else:
        passes = [(alignment.matches, alignment.wrong_pitch, [])]
    # score note -> (pass, performed note or -1 for missed, is wrong pitch)
    last: dict[int, tuple[int, int, bool]] = {}
    attempts: list[tuple[int, int, bool]] = []
    p_pass: dict[int, int] = {}
    for n, (matches, wrong, missed) in enumerate(passes):
        pairs = [(s, p, False) for s, p in matches] + [(s, p, True) for s, p in wrong]
        s_ids = _indices([s for s, _, _ in pairs], s_index, "score note")
        p_ids = _indices([p for _, p, _ in pairs], p_index, "performed note")
        for j, k, (_, _, is_wrong) in zip(s_ids.tolist(), p_ids.tolist(), pairs, strict=True):
            p_pass[k] = n
            before = last.get(j)
            # Without passes, a note named twice is judged by its later playing.
            if before is not None and before[1] >= 0:
                if before[0] == n and p_onset[before[1]] > p_onset[k]:
                    attempts.append((j, k, is_wrong))
                    continue
                attempts.append((j, before[1], before[2]))
            last[j] = (n, k, is_wrong)
        for j in _indices(missed, s_index, "score note").tolist():
            before = last.get(j)
            if before is not None and before[1] >= 0:
                attempts.append((j, before[1], before[2]))
            last[j] = (n, -1, False)
    for j in _indices(alignment.missed, s_index, "score note").tolist():
        last.setdefault(j, (-1, -1, False))
    items = sorted(last.items())

    def pick(cond: int) -> tuple[IntArray, IntArray]:
        sel = [(j, v[1]) for j, v in items if (v[1] < 0) == (cond == 0) and v[2] == (cond == 2)]
        return (
            np.array([j for j, _ in sel], dtype=np.int64),
            np.array([k for _, k in sel], dtype=np.int64),
        )

    m_s, m_p = pick(1)
    w_s, w_p = pick(2)
    d_s, _ = pick(0)
    return _View(
        m_s=m_s,
        m_p=m_p,
        w_s=w_s,
        w_p=w_p,
        d_s=d_s,
        x_p=_indices(alignment.extra, p_index, "performed note"),
        r_s=np.array([a[0] for a in attempts], dtype=np.int64),
        r_p=np.array([a[1] for a in attempts], dtype=np.int64),
        r_wrong=np.array([a[2] for a in attempts], dtype=bool),
        s_pass={j: v[0] for j, v in items},
        p_pass=p_pass,
    )


def build_report(
    score: Score,
    performance: Performance,
    alignment: AlignmentResult,
    options: SessionOptions = _DEFAULT_OPTIONS,
    live: Sequence[Judgement] = (),
) -> Report:
    _check_options(options)
    sn, pn = score.notes, performance.notes
    s_index = {sid: k for k, sid in enumerate(sn["id"].tolist())}
    p_index = {pid: k for k, pid in enumerate(pn["id"].tolist())}
    view = _final_view(alignment, s_index, p_index, pn["onset_s"])
    m_s, m_p, w_s, w_p, d_s, x_p = view.m_s, view.m_p, view.w_s, view.w_p, view.d_s, view.x_p
    # Notes the alignment does not mention count as missed (score) or extra (performance).
    seen_s = np.zeros(len(sn), dtype=bool)
    seen_s[np.concatenate([m_s, w_s, d_s])] = True
    d_s = np.concatenate([d_s, np.flatnonzero(~seen_s)])
    seen_p = _once(np.concatenate([m_p, w_p, x_p, view.r_p]), pn["id"], "performed note")
    x_p = np.concatenate([x_p, np.flatnonzero(~seen_p)])

    scope = score_scope(score, options)
    tm = _time_map(score, performance, m_s, m_p, options)
    tol = timing_tolerance_ms(options)

    # Pairs whose score note is out of scope are extras the options did not ask for.
    out_m, out_w = ~scope[m_s], ~scope[w_s]
    x_out = np.concatenate([m_p[out_m], w_p[out_w]])
    m_s, m_p, w_s, w_p = m_s[~out_m], m_p[~out_m], w_s[~out_w], w_p[~out_w]
    d_s = d_s[scope[d_s]]

    r_s, r_p = view.r_s, view.r_p
    n_lone = len(x_p) + len(x_out)
    rows = np.zeros(len(m_s) + len(w_s) + n_lone + len(r_s) + len(d_s), dtype=NOTE_ROW_DTYPE)
    kinds = ["correct"] * len(m_s) + ["wrong_pitch"] * len(w_s) + ["extra"] * n_lone
    kinds += ["wrong_pitch" if w else "correct" for w in view.r_wrong.tolist()]
    rows["kind"] = kinds + ["missed"] * len(d_s)
    s_rows = np.concatenate([m_s, w_s, np.full(n_lone, -1), r_s, d_s])
    p_rows = np.concatenate([m_p, w_p, x_p, x_out, r_p, np.full(len(d_s), -1)])
    has_s, has_p = s_rows >= 0, p_rows >= 0
    si, pi = s_rows[has_s], p_rows[has_p]
    # Attempts played over again later are shown, and cost nothing: the last playing counts.
    rows["in_scope"] = True
    rows["in_scope"][len(m_s) + len(w_s) + len(x_p) : len(rows) - len(d_s)] = False
    rows["replayed"][len(m_s) + len(w_s) + n_lone : len(rows) - len(d_s)] = True
    rows["attempt"] = [
        view.p_pass.get(k, -1) if k >= 0 else view.s_pass.get(j, -1)
        for j, k in zip(s_rows.tolist(), p_rows.tolist(), strict=True)
    ]
    _fill_score_side(rows, has_s, sn[si], tm)
    _fill_perf_side(rows, has_p, pn[pi], score, tm, options)
    _judge_timing(rows, score, tm, tol, options)
    _velocity_and_duration(rows, sn, pn, performance.pedal, s_rows, p_rows, tm)
    _mark_live(rows, live)

    order = np.argsort(np.where(has_p, rows["onset_s"], rows["expected_onset_s"]), kind="stable")
    rows = rows[order]
    bars = bar_table(score, performance, rows, tm, options)
    subs = subscores(rows, bars, tol, options)
    summary = _summary(score, rows, bars, tm, options)
    attempts = _attempts(score, alignment)
    summary["attempts"] = max(len(attempts), 1)
    summary["restarts"] = sum(a["kind"] == "restart" for a in attempts)
    summary["jumps_back"] = sum(a["kind"] == "jump back" for a in attempts)
    summary["replayed_notes"] = len(r_s)
    return Report(
        options=options,
        alignment=alignment,
        notes=rows,
        reasons=reasons(rows, tol),
        bars=bars,
        subscores=subs,
        overall=overall(subs),
        findings=find(rows, bars, tol, summary, options),
        summary=summary,
        tempo_tolerance_ms=tol,
        attempts=attempts,
    )


def _attempts(score: Score, alignment: AlignmentResult) -> list[dict[str, object]]:
    """Each pass over the score: where it began and ended (printed bars) and how it went."""
    number = {m.index: m.number for m in score.measures}
    return [
        {
            "index": p.index,
            "kind": p.kind,
            "first_bar": number.get(p.first_measure_index, p.first_measure_index + 1),
            "last_bar": number.get(p.last_measure_index, p.last_measure_index + 1),
            "start_s": p.start_s,
            "end_s": p.end_s,
            "correct": len(p.matches),
            "wrong_pitch": len(p.wrong_pitch),
            "missed": len(p.missed),
        }
        for p in alignment.passes
    ]


def _time_map(
    score: Score, performance: Performance, m_s: IntArray, m_p: IntArray, options: SessionOptions
) -> TimeMap:
    sn, pn = score.notes, performance.notes
    timed = ~sn["is_grace"][m_s]
    span_q = float(sn["onset_q"][-1] - sn["onset_q"][0]) if len(sn) else 0.0
    span_s = float(sn["onset_s"][-1] - sn["onset_s"][0]) if len(sn) else 0.0
    printed_spq = span_s / span_q if span_q > 0 and span_s > 0 else 0.5
    spq = printed_spq * 100.0 / max(options.tempo_percent, 1.0)
    t0 = float(pn["onset_s"][0]) if len(pn) else 0.0
    return fit_time_map(
        sn["onset_q"][m_s[timed]],
        pn["onset_s"][m_p[timed]],
        fallback_sec_per_q=spq,
        fallback_t0=t0 - float(sn["onset_q"][0]) * spq if len(sn) else t0,
    )


def _fill_score_side(
    rows: npt.NDArray[np.void], has_s: npt.NDArray[np.bool_], s: npt.NDArray[np.void], tm: TimeMap
) -> None:
    rows["pitch"] = -1
    rows["expected_pitch"] = -1
    rows["hand"] = -1
    rows["measure"] = -1
    rows["measure_index"] = -1
    rows["expected_velocity"] = -1
    rows["velocity"] = -1
    for name in ("onset_s", "expected_onset_s", "timing_ms", "timing_beats"):
        rows[name] = np.nan
    rows["velocity_dev"] = np.nan
    rows["duration_ratio"] = np.nan
    rows["timing"] = "not_judged"
    rows["score_id"][has_s] = s["id"]
    rows["expected_pitch"][has_s] = s["pitch"]
    rows["measure"][has_s] = s["measure"]
    rows["measure_index"][has_s] = s["measure_index"]
    rows["beat"][has_s] = s["beat"]
    rows["hand"][has_s] = s["hand"]
    rows["expected_velocity"][has_s] = s["velocity_mark"]
    rows["expected_onset_s"][has_s] = tm.time_at(s["onset_q"])


def _fill_perf_side(
    rows: npt.NDArray[np.void],
    has_p: npt.NDArray[np.bool_],
    p: npt.NDArray[np.void],
    score: Score,
    tm: TimeMap,
    options: SessionOptions,
) -> None:
    rows["perf_id"][has_p] = p["id"]
    rows["pitch"][has_p] = p["pitch"]
    rows["onset_s"][has_p] = p["onset_s"]
    rows["velocity"][has_p] = p["velocity"]
    # An extra note sits in the bar the learner was playing when it sounded.
    lone = has_p & (rows["measure_index"] < 0)
    if lone.any() and score.measures:
        q = tm.position_at(rows["onset_s"][lone])
        starts = np.array([m.start_q for m in score.measures])
        idx = np.clip(np.searchsorted(starts, q + 1e-9, side="right") - 1, 0, len(starts) - 1)
        numbers = np.array([m.number for m in score.measures])
        beat_q = np.array([4.0 / m.beat_type for m in score.measures])
        rows["measure_index"][lone] = idx
        rows["measure"][lone] = numbers[idx]
        rows["beat"][lone] = (q - starts[idx]) / beat_q[idx] + 1.0
        if options.first_bar is not None or options.last_bar is not None:
            lo = options.first_bar if options.first_bar is not None else -(2**31)
            hi = options.last_bar if options.last_bar is not None else 2**31 - 1
            inside = (numbers[idx] >= lo) & (numbers[idx] <= hi)
            rows["in_scope"][lone] &= inside


def _judge_timing(
    rows: npt.NDArray[np.void], score: Score, tm: TimeMap, tol: float, options: SessionOptions
) -> None:
    if options.mode == "wait":
        return
    sn = score.notes
    grace = {str(i) for i in sn["id"][sn["is_grace"]]}
    judged = np.isin(rows["kind"], ["correct", "wrong_pitch"]) & rows["in_scope"]
    if grace:
        judged &= ~np.isin(rows["score_id"], list(grace))
    dev_s = rows["onset_s"][judged] - rows["expected_onset_s"][judged]
    q = tm.position_at(rows["expected_onset_s"][judged])
    beat_type = np.array([m.beat_type for m in score.measures], dtype=np.float64)
    sec_per_beat = tm.spq_at(q) * 4.0 / beat_type[rows["measure_index"][judged]]
    rows["timing_ms"][judged] = dev_s * 1000.0
    rows["timing_beats"][judged] = dev_s / sec_per_beat
    label = np.where(
        dev_s * 1000.0 < -tol, "early", np.where(dev_s * 1000.0 > tol, "late", "on_time")
    )
    rows["timing"][judged] = label


def _velocity_and_duration(
    rows: npt.NDArray[np.void],
    sn: npt.NDArray[np.void],
    pn: npt.NDArray[np.void],
    pedal: list[PedalEvent],
    s_rows: IntArray,
    p_rows: IntArray,
    tm: TimeMap,
) -> None:
    played = rows["kind"] == "correct"
    if not played.any():
        return
    level = float(np.median(rows["velocity"][played] - rows["expected_velocity"][played]))
    rows["velocity_dev"][played] = (
        rows["velocity"][played] - rows["expected_velocity"][played] - level
    )
    s, p = sn[s_rows[played]], pn[p_rows[played]]
    written = s["duration_q"] * tm.spq_at(s["onset_q"])
    # Articulation is heard: a key released under the pedal sounds on until the pedal lifts.
    presses, releases = pedal_intervals(pedal, float(np.nanmax(pn["offset_s"], initial=0.0)))
    held = sounding_offsets(p["offset_s"], presses, releases) - p["onset_s"]
    ratio = np.full(len(s), np.nan)
    ok = (written > 0) & ~s["is_grace"] & np.isfinite(held)
    ratio[ok] = held[ok] / written[ok]
    rows["duration_ratio"][played] = ratio


def _mark_live(rows: npt.NDArray[np.void], live: Sequence[Judgement]) -> None:
    """Note where the final alignment revised what the live session said."""
    if not live:
        return
    by_perf = {j.perf_id: (j.kind, j.score_id or "") for j in live if j.perf_id is not None}
    missed_live = {j.score_id for j in live if j.kind == "missed"}
    kinds = rows["kind"].tolist()
    perf_ids = rows["perf_id"].tolist()
    score_ids = rows["score_id"].tolist()
    out, out_ids = [""] * len(rows), [""] * len(rows)
    for k, (kind, pid, sid) in enumerate(zip(kinds, perf_ids, score_ids, strict=True)):
        missed = ("missed", sid) if sid in missed_live else None
        said = by_perf.get(pid) if pid else missed
        if said is not None and said != (kind, sid):
            out[k], out_ids[k] = said
    rows["live"] = out
    rows["live_score_id"] = out_ids


def _summary(
    score: Score,
    rows: npt.NDArray[np.void],
    bars: npt.NDArray[np.void],
    tm: TimeMap,
    options: SessionOptions,
) -> dict[str, object]:
    scoped = rows[rows["in_scope"]]
    counts = {k: int((scoped["kind"] == k).sum()) for k in ("correct", "wrong_pitch", "missed")}
    expected = counts["correct"] + counts["wrong_pitch"] + counts["missed"]
    bpm = bars["tempo_bpm"][np.isfinite(bars["tempo_bpm"])]
    printed = [m.bpm for m in score.tempo_marks] or [120.0]
    target = float(np.median(printed)) * options.tempo_percent / 100.0
    played = rows[np.isfinite(rows["onset_s"])]
    return {
        "expected": expected,
        **counts,
        "extra": int((scoped["kind"] == "extra").sum()),
        "extra_outside_options": int((~rows["in_scope"] & (rows["kind"] == "extra")).sum()),
        "accuracy": counts["correct"] / expected if expected else float("nan"),
        "tempo_bpm": float(np.median(bpm)) if len(bpm) else float(60.0 / np.median(tm.sec_per_q)),
        "target_bpm": target,
        "duration_s": float(played["onset_s"].max() - played["onset_s"].min())
        if len(played)
        else 0.0,
        "pedal_down_s": float(bars["pedal_down_s"].sum()),
        "live_revised": int((rows["live"] != "").sum()),
        "bars": len(bars),
    }
