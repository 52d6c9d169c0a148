"""A stored report drawn as the engine's piano roll.

The engine draws from its own objects; a stored report is their JSON form, so the rows are
read back into the engine's tables first. Rows naming a score note the stored score lacks (a
report from a foreign score version) are drawn as played notes only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sonata_engine import (
    PERF_NOTE_DTYPE,
    AlignmentResult,
    EngineError,
    Performance,
    Score,
    SessionOptions,
    performance_from_dict,
)
from sonata_engine.report import BAR_ROW_DTYPE, NOTE_ROW_DTYPE, Report
from sonata_engine.svg import piano_roll_svg

from sonata_db.adapters.scores import performed_notes


def _table(rows: list[dict[str, Any]], dtype: np.dtype[Any]) -> np.ndarray:
    table = np.zeros(len(rows), dtype=dtype)
    for name in dtype.names or ():
        kind = dtype[name].kind
        blank: Any = math.nan if kind == "f" else ("" if kind == "U" else -1)
        if kind == "b":
            blank = False
        values = [row.get(name) for row in rows]
        table[name] = [blank if v is None else v for v in values]
    return table


def _performance(report: dict[str, Any], rows: np.ndarray) -> Performance:
    perf = report.get("performance")
    if isinstance(perf, dict):
        try:
            return performance_from_dict(perf)
        except EngineError:
            pass  # fall back on the rows: the picture is still worth drawing
    played = rows[rows["perf_id"] != ""]
    notes = np.zeros(len(played), dtype=PERF_NOTE_DTYPE)
    ends = {(p, round(on, 6)): off for p, on, off, _ in performed_notes(report)}
    notes["id"] = played["perf_id"]
    notes["pitch"] = played["pitch"]
    notes["onset_s"] = played["onset_s"]
    notes["offset_s"] = [
        ends.get((int(p), round(float(on), 6)), float(on) + 0.25)
        for p, on in zip(played["pitch"].tolist(), played["onset_s"].tolist(), strict=True)
    ]
    notes["velocity"] = played["velocity"]
    return Performance(notes=notes)


def piano_roll(score: Score, report: dict[str, Any]) -> str:
    raw_rows = [r for r in report.get("notes", []) if isinstance(r, dict)]
    rows = _table(raw_rows, NOTE_ROW_DTYPE)
    known = set(score.notes["id"].tolist())
    rows["score_id"] = [s if s in known else "" for s in rows["score_id"].tolist()]
    rows = rows[(rows["score_id"] != "") | (rows["perf_id"] != "")]
    bars = _table([b for b in report.get("bars", []) if isinstance(b, dict)], BAR_ROW_DTYPE)
    performance = _performance(report, rows)
    have = set(performance.notes["id"].tolist())
    rows["perf_id"] = [p if p in have else "" for p in rows["perf_id"].tolist()]
    rebuilt = Report(
        options=SessionOptions(),
        alignment=AlignmentResult([], [], [], []),
        notes=rows,
        reasons=[""] * len(rows),
        bars=bars,
        subscores={},
        overall=float(report.get("overall") or 0.0),
        findings=[],
        summary={},
        tempo_tolerance_ms=0.0,
    )
    return piano_roll_svg(score, performance, rebuilt)
