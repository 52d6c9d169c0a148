"""A piano-roll picture of a performance against its score, as SVG text.

Time runs left to right in performance seconds; score notes sit where the learner's own tempo
(the report's time map) puts them, drawn as outlines; performed notes are filled. Colours say
correct / wrong pitch / extra / missed, a thin line joins each matched pair (its slant is the
timing error), and bar lines carry their printed numbers.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

import numpy as np

from sonata_engine.report import Report
from sonata_engine.types import Performance, Score

COLOURS = {
    "correct": "#2e7d32",
    "wrong_pitch": "#ef6c00",
    "extra": "#c62828",
    "missed": "#6a1b9a",
}
PX_PER_S = 80.0
ROW_PX = 6.0
MARGIN = 40.0
_MIN_NOTE_S = 0.05  # a note shorter than this would be invisible


def piano_roll_svg(score: Score, performance: Performance, report: Report) -> str:
    rows = report.notes
    sn, pn = score.notes, performance.notes
    s_index = {sid: k for k, sid in enumerate(sn["id"].tolist())}
    p_index = {pid: k for k, pid in enumerate(pn["id"].tolist())}
    pitches = np.concatenate([rows["pitch"][rows["pitch"] >= 0], rows["expected_pitch"]])
    pitches = pitches[pitches >= 0]
    lo, hi = (int(pitches.min()) - 2, int(pitches.max()) + 2) if len(pitches) else (58, 62)
    times = np.concatenate(
        [rows["onset_s"], rows["expected_onset_s"], report.bars["start_s"], report.bars["end_s"]]
    )
    times = times[np.isfinite(times)]
    t0, t1 = (float(times.min()), float(times.max()) + 1.0) if len(times) else (0.0, 1.0)
    width = MARGIN * 2 + (t1 - t0) * PX_PER_S
    height = MARGIN * 2 + (hi - lo + 1) * ROW_PX

    def x(t: float) -> float:
        return MARGIN + (t - t0) * PX_PER_S

    def y(p: int) -> float:
        return MARGIN + (hi - p) * ROW_PX

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="sans-serif" font-size="10">',
        f"<title>{escape(score.title or 'Performance')} - piano roll</title>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        '<g class="bars" stroke="#bbbbbb">',
    ]
    for number, start in zip(
        report.bars["number"].tolist(), report.bars["start_s"].tolist(), strict=True
    ):
        if math.isfinite(start):
            out.append(
                f'<line x1="{x(start):.1f}" y1="{MARGIN - 10:.1f}" x2="{x(start):.1f}" '
                f'y2="{height - MARGIN:.1f}"/><text x="{x(start) + 2:.1f}" y="{MARGIN - 12:.1f}" '
                f'stroke="none" fill="#555555">{number}</text>'
            )
    out.append("</g>")
    score_g, perf_g, link_g = ['<g class="score" fill="none">'], ['<g class="performance">'], []
    link_g.append('<g class="timing" stroke="#444444" stroke-width="0.6">')
    for kind, sid, pid, onset, expected in zip(
        rows["kind"].tolist(),
        rows["score_id"].tolist(),
        rows["perf_id"].tolist(),
        rows["onset_s"].tolist(),
        rows["expected_onset_s"].tolist(),
        strict=True,
    ):
        colour = COLOURS[kind]
        if sid:
            s = sn[s_index[sid]]
            length = max(float(s["duration_q"]) * _spq(report, expected), _MIN_NOTE_S)
            score_g.append(
                f'<rect x="{x(expected):.1f}" y="{y(int(s["pitch"])):.1f}" '
                f'width="{length * PX_PER_S:.1f}" height="{ROW_PX:.1f}" stroke="{colour}">'
                f"<title>{escape(sid)} {kind}</title></rect>"
            )
        if pid:
            p = pn[p_index[pid]]
            off = float(p["offset_s"])
            length = max((off - onset) if math.isfinite(off) else _MIN_NOTE_S, _MIN_NOTE_S)
            perf_g.append(
                f'<rect x="{x(onset):.1f}" y="{y(int(p["pitch"])) + 1:.1f}" '
                f'width="{length * PX_PER_S:.1f}" height="{ROW_PX - 2:.1f}" fill="{colour}" '
                f'fill-opacity="0.8"><title>{escape(pid)} {kind}</title></rect>'
            )
        if sid and pid:
            ys = y(int(sn[s_index[sid]]["pitch"])) + ROW_PX / 2
            yp = y(int(pn[p_index[pid]]["pitch"])) + ROW_PX / 2
            link_g.append(
                f'<line x1="{x(expected):.1f}" y1="{ys:.1f}" x2="{x(onset):.1f}" y2="{yp:.1f}"/>'
            )
    out += [*score_g, "</g>", *perf_g, "</g>", *link_g, "</g>"]
    out.append('<g class="legend">')
    for k, (kind, colour) in enumerate(COLOURS.items()):
        lx = MARGIN + k * 110
        out.append(
            f'<rect x="{lx:.0f}" y="{height - 22:.0f}" width="12" height="8" fill="{colour}"/>'
            f'<text x="{lx + 16:.0f}" y="{height - 14:.0f}">{kind.replace("_", " ")}</text>'
        )
    out.append(
        f'<text x="{MARGIN + 440:.0f}" y="{height - 14:.0f}">outline: score, filled: played</text>'
    )
    out += ["</g>", "</svg>"]
    return "\n".join(out)


def _spq(report: Report, t: float) -> float:
    """Seconds per quarter around performance time ``t``, from the bar it falls in."""
    bars = report.bars
    if len(bars) == 0 or not math.isfinite(t):
        return 0.5
    k = int(np.clip(np.searchsorted(bars["start_s"], t, side="right") - 1, 0, len(bars) - 1))
    bpm = float(bars["tempo_bpm"][k])
    return 60.0 / bpm if math.isfinite(bpm) and bpm > 0 else 0.5
