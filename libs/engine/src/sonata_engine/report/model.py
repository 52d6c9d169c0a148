"""The final report of one performance: per-note and per-bar tables, subscores and findings."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sonata_engine.types import AlignmentResult, SessionOptions

#: One row per expected score note and per performed note (a match is one row holding both).
NOTE_ROW_DTYPE = np.dtype(
    [
        ("kind", "U11"),  # correct | wrong_pitch | extra | missed
        ("score_id", "U32"),
        ("perf_id", "U32"),
        ("pitch", "i2"),  # played, -1 for a missed note
        ("expected_pitch", "i2"),  # -1 for an extra note
        ("measure", "i4"),  # printed bar (an extra note: the bar the learner was in)
        ("measure_index", "i4"),
        ("beat", "f4"),
        ("hand", "i1"),
        ("onset_s", "f8"),  # performed onset, NaN for a missed note
        ("expected_onset_s", "f8"),  # where the learner's own tempo puts the score note
        ("timing_ms", "f8"),  # + late, - early; NaN when not judged
        ("timing_beats", "f8"),
        ("timing", "U10"),  # early | on_time | late | not_judged
        ("velocity", "i2"),
        ("expected_velocity", "i2"),  # the marked dynamic's velocity
        ("velocity_dev", "f8"),  # played minus marked, after removing the player's own level
        ("duration_ratio", "f8"),  # sounding (pedal included) / written length at the local tempo
        ("in_scope", "?"),  # inside the options' hands and bars
        ("live", "U11"),  # what the live session said, when it differs ("" otherwise)
        ("live_score_id", "U32"),  # the score note the live session tied it to, then
        ("attempt", "i4"),  # the pass (AlignmentPass.index) it belongs to, -1 none
        ("replayed", "?"),  # an attempt at a score note played again later (not scored)
    ]
)

#: One row per bar in played order.
BAR_ROW_DTYPE = np.dtype(
    [
        ("index", "i4"),
        ("number", "i4"),
        ("expected", "i4"),
        ("correct", "i4"),
        ("wrong_pitch", "i4"),
        ("missed", "i4"),
        ("extra", "i4"),
        ("accuracy", "f8"),  # correct / expected, NaN for a bar with nothing expected
        ("timing_ms", "f8"),  # mean signed deviation of its judged notes
        ("timing_abs_ms", "f8"),
        ("right_expected", "i4"),
        ("right_correct", "i4"),
        ("right_timing_ms", "f8"),
        ("left_expected", "i4"),
        ("left_correct", "i4"),
        ("left_timing_ms", "f8"),
        ("tempo_bpm", "f8"),  # quarter notes per minute, from the notes played in the bar
        ("velocity", "f8"),  # mean played velocity
        ("velocity_marked", "f8"),  # mean marked velocity
        ("pedal_down_s", "f8"),
        ("pedal_changes", "i4"),
        ("duration_ratio", "f8"),  # median sounding / written length
        ("legato_overlap_ms", "f8"),  # mean overlap of notes written legato (- is a gap)
        ("articulation", "U8"),  # legato | detached | staccato | "" (nothing to judge)
        ("start_s", "f8"),
        ("end_s", "f8"),
    ]
)

FORMULA = (
    "overall = sum(w_k * s_k) / sum(w_k) over the subscores s_k that could be judged, with "
    "w = notes 0.45, rhythm 0.20, tempo 0.15, dynamics 0.10, articulation 0.10. "
    "notes = 100 * correct / (expected + extra); "
    "rhythm = 100 * mean credit of the timed notes (1 within the tolerance, falling linearly "
    "to 0 at three times the tolerance); "
    "tempo = 100 * max(0, 1 - sd(bar-to-bar change of ln bpm) / 0.3); "
    "dynamics = 100 * clip((1 + r) / 2) with r the correlation of played and marked bar "
    "velocities when the score marks contrasts, else 100 * max(0, 1 - sd(bar velocity) / 20); "
    "articulation = 100 * max(0, 1 - median |log2(sounding / written length)| / 1.5)."
)
WEIGHTS = {"notes": 0.45, "rhythm": 0.20, "tempo": 0.15, "dynamics": 0.10, "articulation": 0.10}


@dataclass(frozen=True, slots=True)
class Finding:
    """One sentence worth telling the learner, the facts behind it, and how much it matters."""

    text: str
    kind: str
    first_bar: int
    last_bar: int
    impact: float
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Report:
    options: SessionOptions
    alignment: AlignmentResult
    notes: npt.NDArray[np.void]  # NOTE_ROW_DTYPE, in time order
    reasons: list[str]  # one per note row
    bars: npt.NDArray[np.void]  # BAR_ROW_DTYPE
    subscores: dict[str, float | None]
    overall: float
    findings: list[Finding]
    summary: dict[str, Any]
    tempo_tolerance_ms: float
    #: one per pass over the score (restarts, jumps back), see AlignmentPass
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall,
            "subscores": self.subscores,
            "formula": FORMULA,
            "weights": WEIGHTS,
            "summary": _clean(self.summary),
            "options": asdict(self.options),
            "timing_tolerance_ms": self.tempo_tolerance_ms,
            "findings": [_clean(asdict(f)) for f in self.findings],
            "tempo_curve": _per_bar(self.bars, bar="number", bpm="tempo_bpm"),
            "dynamics_profile": _per_bar(
                self.bars, bar="number", velocity="velocity", marked="velocity_marked"
            ),
            "pedal": _per_bar(
                self.bars, bar="number", down_s="pedal_down_s", changes="pedal_changes"
            ),
            "articulation": _per_bar(
                self.bars,
                bar="number",
                label="articulation",
                duration_ratio="duration_ratio",
                legato_overlap_ms="legato_overlap_ms",
            ),
            "bars": _rows(self.bars),
            "notes": [
                {**row, "reason": reason}
                for row, reason in zip(_rows(self.notes), self.reasons, strict=True)
            ],
            "attempts": _clean(self.attempts),
            "alignment": {
                "matches": [list(p) for p in self.alignment.matches],
                "wrong_pitch": [list(p) for p in self.alignment.wrong_pitch],
                "extra": list(self.alignment.extra),
                "missed": list(self.alignment.missed),
                "passes": [_clean(asdict(p)) for p in self.alignment.passes],
            },
        }


def _per_bar(bars: npt.NDArray[np.void], **fields: str) -> list[dict[str, Any]]:
    """A few bar columns renamed, one dict per bar."""
    cols = [[_json(v) for v in bars[name].tolist()] for name in fields.values()]
    return [dict(zip(fields, vals, strict=True)) for vals in zip(*cols, strict=True)]


def _rows(arr: npt.NDArray[np.void]) -> list[dict[str, Any]]:
    names = arr.dtype.names or ()
    cols = [[_json(v) for v in arr[n].tolist()] for n in names]
    return [dict(zip(names, vals, strict=True)) for vals in zip(*cols, strict=True)]


def _json(v: Any) -> Any:
    # JSON has no NaN: a value that could not be measured is null.
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 4)
    return v


def _clean(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _clean(v) for k, v in d.items()}
    if isinstance(d, list | tuple):
        return [_clean(v) for v in d]
    if isinstance(d, np.generic):
        return _json(d.item())
    return _json(d)
