"""Shared steps of the score loaders: seconds from tempo marks, bars and beats, the note array."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sonata_engine.types import SCORE_NOTE_DTYPE, Measure, ScoreNotes, TempoMark

DEFAULT_BPM = 120.0
DEFAULT_VELOCITY = 64  # mf, when a piece marks no dynamic

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: MIDI velocity for each printed dynamic; mf is the engine's neutral 64.
DYNAMIC_VELOCITY = {
    "pppppp": 8,
    "ppppp": 10,
    "pppp": 16,
    "ppp": 24,
    "pp": 36,
    "p": 48,
    "mp": 56,
    "n": 8,
    "mf": 64,
    "f": 80,
    "ff": 96,
    "fff": 112,
    "ffff": 120,
    "fffff": 124,
    "ffffff": 127,
}


def seconds_at(onset_q: FloatArray, tempo_marks: list[TempoMark]) -> FloatArray:
    """Seconds at each quarter position under the piecewise-constant tempo of the marks."""
    marks = sorted((m for m in tempo_marks if m.bpm > 0), key=lambda m: m.onset_q)
    if not marks or marks[0].onset_q > 0:
        marks.insert(0, TempoMark(0.0, marks[0].bpm if marks else DEFAULT_BPM))
    starts_q = np.array([m.onset_q for m in marks], dtype=np.float64)
    sec_per_q = np.array([60.0 / m.bpm for m in marks], dtype=np.float64)
    starts_s = np.concatenate(([0.0], np.cumsum(np.diff(starts_q) * sec_per_q[:-1])))
    seg = np.clip(np.searchsorted(starts_q, onset_q, side="right") - 1, 0, len(marks) - 1)
    out: FloatArray = starts_s[seg] + (onset_q - starts_q[seg]) * sec_per_q[seg]
    return out


def measure_of(onset_q: FloatArray, measures: list[Measure]) -> IntArray:
    """0-based unfolded measure index holding each position (the last bar takes the rest)."""
    starts = np.array([m.start_q for m in measures], dtype=np.float64)
    # A small epsilon keeps a note written exactly on a barline in the bar it starts.
    idx: IntArray = np.clip(np.searchsorted(starts, onset_q + 1e-9, side="right") - 1, 0, None)
    return idx


def make_notes(
    *,
    ids: list[str],
    pitch: npt.ArrayLike,
    onset_q: FloatArray,
    duration_q: FloatArray,
    staff: npt.ArrayLike,
    hand: npt.ArrayLike,
    voice: npt.ArrayLike,
    is_grace: npt.ArrayLike,
    velocity_mark: npt.ArrayLike,
    measures: list[Measure],
    tempo_marks: list[TempoMark],
) -> ScoreNotes:
    """Fill the engine's score note array, merge unisons, sort it by onset, then pitch.

    Two voices sounding the same key at the same moment are one key press: of such a unison
    (grace notes aside) the longest note stays, between equals the first voice's (the lowest
    number), so that a doubling added in a later voice never takes the written note's id.
    """
    n = len(ids)
    notes = np.zeros(n, dtype=SCORE_NOTE_DTYPE)
    notes["id"] = ids
    notes["pitch"] = pitch
    notes["onset_q"] = onset_q
    notes["duration_q"] = duration_q
    start_s = seconds_at(onset_q, tempo_marks)
    notes["onset_s"] = start_s
    notes["duration_s"] = seconds_at(onset_q + duration_q, tempo_marks) - start_s
    m_idx = measure_of(onset_q, measures)
    numbers = np.array([m.number for m in measures], dtype=np.int64)
    starts = np.array([m.start_q for m in measures], dtype=np.float64)
    beat_q = np.array([4.0 / m.beat_type for m in measures], dtype=np.float64)
    notes["measure_index"] = m_idx
    notes["measure"] = numbers[m_idx]
    notes["beat"] = (onset_q - starts[m_idx]) / beat_q[m_idx] + 1.0
    notes["staff"] = staff
    notes["hand"] = hand
    notes["voice"] = voice
    notes["is_grace"] = is_grace
    notes["velocity_mark"] = velocity_mark
    order = np.lexsort((-notes["voice"], notes["duration_q"], notes["pitch"], notes["onset_q"]))
    notes = notes[order]
    grace = notes["is_grace"]
    unison = (
        (notes["pitch"][1:] == notes["pitch"][:-1])
        & (np.abs(notes["onset_q"][1:] - notes["onset_q"][:-1]) < 1e-9)
        & ~grace[1:]
        & ~grace[:-1]
    )
    merged: ScoreNotes = notes[~np.r_[unison, False]]
    return merged
