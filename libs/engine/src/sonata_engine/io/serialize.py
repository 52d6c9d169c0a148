"""Score and Performance <-> JSON-able dicts, exact both ways (events carry scores this way).

Notes travel column-wise (one list per field) to keep a 10,000-note score compact. Python's
float repr round-trips float64 exactly, and the float32 ``beat`` survives the trip through a
float64.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from sonata_engine.errors import PerformanceFormatError, ScoreFormatError
from sonata_engine.types import (
    PERF_NOTE_DTYPE,
    SCORE_NOTE_DTYPE,
    DynamicMark,
    Measure,
    PedalEvent,
    Performance,
    Score,
    Section,
    TempoMark,
)

FORMAT_VERSION = 1


def _columns(notes: np.ndarray) -> dict[str, list[Any]]:
    names = notes.dtype.names or ()
    return {name: notes[name].tolist() for name in names}


def _from_columns(cols: Any, dtype: np.dtype[Any], what: str, error: type[Exception]) -> np.ndarray:
    if not isinstance(cols, dict):
        raise error(f"{what} must be an object of columns")
    names = dtype.names or ()
    missing = [n for n in names if n not in cols]
    if missing:
        raise error(f"{what} lack the column(s) {', '.join(missing)}")
    lengths = {len(cols[n]) for n in names}
    if len(lengths) != 1:
        raise error(f"{what} columns differ in length")
    notes = np.zeros(lengths.pop(), dtype=dtype)
    try:
        for name in names:
            notes[name] = [math.nan if v is None else v for v in cols[name]]
    except (TypeError, ValueError, OverflowError) as exc:
        raise error(f"{what} column {name!r} holds a bad value: {exc}") from exc
    return notes


def score_to_dict(score: Score) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "title": score.title,
        "composer": score.composer,
        "notes": _columns(score.notes),
        "measures": [asdict(m) for m in score.measures],
        "sections": [asdict(s) for s in score.sections],
        "tempo_marks": [asdict(t) for t in score.tempo_marks],
        "dynamics": [asdict(d) for d in score.dynamics],
    }


def score_from_dict(d: dict[str, Any]) -> Score:
    if not isinstance(d, dict) or d.get("format") != FORMAT_VERSION:
        raise ScoreFormatError(f"not a score dict of format {FORMAT_VERSION}")
    try:
        return Score(
            notes=_from_columns(d["notes"], SCORE_NOTE_DTYPE, "score notes", ScoreFormatError),
            measures=[Measure(**m) for m in d["measures"]],
            sections=[Section(**s) for s in d.get("sections", [])],
            tempo_marks=[TempoMark(**t) for t in d.get("tempo_marks", [])],
            dynamics=[DynamicMark(**x) for x in d.get("dynamics", [])],
            title=str(d.get("title", "")),
            composer=str(d.get("composer", "")),
        )
    except (KeyError, TypeError) as exc:
        raise ScoreFormatError(f"score dict is missing or has a bad field: {exc}") from exc


def performance_to_dict(performance: Performance) -> dict[str, Any]:
    notes = _columns(performance.notes)
    # JSON has no NaN: a note still held when the recording stopped has offset null.
    notes["offset_s"] = [None if math.isnan(v) else v for v in notes["offset_s"]]
    return {
        "format": FORMAT_VERSION,
        "notes": notes,
        "pedal": [[p.time_s, p.value] for p in performance.pedal],
    }


def performance_from_dict(d: dict[str, Any]) -> Performance:
    if not isinstance(d, dict) or d.get("format") != FORMAT_VERSION:
        raise PerformanceFormatError(f"not a performance dict of format {FORMAT_VERSION}")
    try:
        pedal = [PedalEvent(float(t), int(v)) for t, v in d.get("pedal", [])]
    except (TypeError, ValueError) as exc:
        raise PerformanceFormatError(f"performance pedal events are malformed: {exc}") from exc
    notes = _from_columns(
        d.get("notes"), PERF_NOTE_DTYPE, "performance notes", PerformanceFormatError
    )
    return Performance(notes=notes, pedal=pedal)
