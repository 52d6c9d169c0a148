"""A stored report drawn as the engine's piano roll.

The engine draws from its own objects; a stored report is their JSON form, so the rows are
read back into the engine's tables first. Rows naming a score note the stored score lacks (a
report from a foreign score version) are drawn as played notes only; a row whose values do not
fit the table (an unknown kind, a pitch off the keyboard, a time that is not a number or lies
outside a session's length) is left out. A report with no row left to draw is refused.
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
from sonata_engine.svg import COLOURS, piano_roll_svg

from sonata_db.adapters.scores import MAX_TAKE_S, performed_notes
from sonata_db.domain.errors import UnrenderableReportError

_PITCHES = ("pitch", "expected_pitch")
_NOTE_TIMES = ("onset_s", "expected_onset_s")
_BAR_TIMES = ("start_s", "end_s")


def _blank(kind: str) -> Any:
    if kind == "f":
        return math.nan
    if kind == "U":
        return ""
    return False if kind == "b" else -1


def _row(row: dict[str, Any], dtype: np.dtype[Any]) -> tuple[Any, ...] | None:
    """The row as a record of ``dtype``, or None when a value does not fit its column."""
    values = []
    for name in dtype.names or ():
        value = row.get(name)
        column = dtype[name]
        if value is None:
            values.append(_blank(column.kind))
            continue
        if column.kind in "iu" and (isinstance(value, bool) or not isinstance(value, int)):
            return None
        if column.kind == "f" and (isinstance(value, bool) or not isinstance(value, int | float)):
            return None
        if column.kind == "U" and not isinstance(value, str):
            return None
        if column.kind == "b" and not isinstance(value, bool):
            return None
        values.append(value)
    try:
        record = np.array([tuple(values)], dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        return None
    return tuple(record[0].tolist())


def _time_ok(value: float) -> bool:
    return math.isnan(value) or -MAX_TAKE_S <= value <= MAX_TAKE_S


def _table(rows: list[dict[str, Any]], dtype: np.dtype[Any]) -> np.ndarray:
    records = [r for r in (_row(row, dtype) for row in rows) if r is not None]
    table = np.array(records, dtype=dtype) if records else np.zeros(0, dtype=dtype)
    names = set(dtype.names or ())
    keep = np.ones(len(table), dtype=bool)
    if "kind" in names:
        keep &= np.isin(table["kind"], list(COLOURS))
    for name in _PITCHES if "kind" in names else ():
        keep &= (table[name] >= -1) & (table[name] <= 127)
    for name in _NOTE_TIMES if "kind" in names else _BAR_TIMES:
        if name in names:
            keep &= np.array([_time_ok(float(t)) for t in table[name].tolist()], dtype=bool)
    return table[keep]


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


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def piano_roll(score: Score, report: dict[str, Any]) -> str:
    """Raises UnrenderableReportError when nothing of the report can be drawn."""
    try:
        return _piano_roll(score, report)
    except UnrenderableReportError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, EngineError) as exc:
        raise UnrenderableReportError(
            f"the stored report cannot be drawn: {type(exc).__name__}"
        ) from exc


def _piano_roll(score: Score, report: dict[str, Any]) -> str:
    rows = _table(_dicts(report.get("notes")), NOTE_ROW_DTYPE)
    known = set(score.notes["id"].tolist())
    rows["score_id"] = [s if s in known else "" for s in rows["score_id"].tolist()]
    rows = rows[(rows["score_id"] != "") | (rows["perf_id"] != "")]
    if len(rows) == 0:
        raise UnrenderableReportError("the stored report has no note the piano roll can draw")
    bars = _table(_dicts(report.get("bars")), BAR_ROW_DTYPE)
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
        overall=0.0,  # not drawn
        findings=[],
        summary={},
        tempo_tolerance_ms=0.0,
    )
    return piano_roll_svg(score, performance, rebuilt)
