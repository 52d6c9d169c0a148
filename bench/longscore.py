"""Long reference pieces built from real ones, for speed and simulator runs.

Copies of the Vienna scores are laid end to end, each copy transposed by a different interval
so that no two copies are the same music (a jump back must have one right answer). Note ids get
a ``c<k>.`` prefix per copy.
"""

from __future__ import annotations

import numpy as np
from sonata_engine.types import Measure, Score

from bench.engine_run import load_engine_score
from bench.groundtruth import PIECES

TRANSPOSITIONS = (0, 2, -3, 5, -1, 4, -5, 1, 3, -2, -4, 6)
LOWEST, HIGHEST = 21, 108


def vienna_scores() -> dict[str, Score]:
    """The four pieces through the engine's own loader."""
    return {piece: load_engine_score(piece) for piece in PIECES}


def concatenate(scores: list[Score], min_notes: int) -> Score:
    """Copies of ``scores`` in turn, end to end, until the piece has at least ``min_notes``."""
    parts, measures = [], []
    q0 = s0 = 0.0
    bar0 = index0 = 0
    k = 0
    total = 0
    while total < min_notes:
        src = scores[k % len(scores)]
        shift = _fitting_shift(src, TRANSPOSITIONS[k % len(TRANSPOSITIONS)])
        notes = src.notes.copy()
        notes["id"] = [f"c{k}.{sid}" for sid in src.notes["id"]]
        notes["pitch"] += shift
        notes["onset_q"] += q0
        notes["onset_s"] += s0
        notes["measure"] += bar0
        notes["measure_index"] += index0
        parts.append(notes)
        for m in src.measures:
            measures.append(
                Measure(
                    index0 + m.index, bar0 + m.number, q0 + m.start_q, q0 + m.end_q,
                    m.beats, m.beat_type,
                )
            )  # fmt: skip
        last = src.measures[-1]
        end_q = last.end_q
        end_s = _seconds_at(src, end_q)
        q0, s0 = q0 + end_q, s0 + end_s
        bar0 += max(m.number for m in src.measures)
        index0 += len(src.measures)
        total += len(notes)
        k += 1
    return Score(
        notes=np.concatenate(parts), measures=measures, title=f"{k} copies", composer="various"
    )


def prefix(score: Score, n_notes: int) -> Score:
    """The first whole bars of ``score`` holding at least ``n_notes`` notes."""
    if n_notes >= len(score.notes):
        return score
    last_index = int(score.notes["measure_index"][n_notes - 1])
    keep = score.notes["measure_index"] <= last_index
    return Score(
        notes=score.notes[keep].copy(),
        measures=[m for m in score.measures if m.index <= last_index],
        tempo_marks=list(score.tempo_marks),
        dynamics=list(score.dynamics),
        title=score.title,
        composer=score.composer,
    )


def dedupe(score: Score) -> Score:
    """``score`` without second copies of a key struck twice at the same instant (two voices
    sharing a note): one key press stands for both, so a simulated learner plays it once."""
    notes = score.notes
    keys = np.rec.fromarrays([notes["onset_q"], notes["pitch"]])
    _, first = np.unique(keys, return_index=True)
    keep = np.zeros(len(notes), dtype=bool)
    keep[first] = True
    if keep.all():
        return score
    return Score(
        notes=notes[keep],
        measures=score.measures,
        sections=score.sections,
        tempo_marks=score.tempo_marks,
        dynamics=score.dynamics,
        title=score.title,
        composer=score.composer,
    )


def _fitting_shift(score: Score, shift: int) -> int:
    lo, hi = int(score.notes["pitch"].min()), int(score.notes["pitch"].max())
    return shift if lo + shift >= LOWEST and hi + shift <= HIGHEST else 0


def _seconds_at(score: Score, q: float) -> float:
    """Seconds at the printed tempo at quarter position ``q`` (extrapolating from the notes)."""
    onset_q, onset_s = score.notes["onset_q"], score.notes["onset_s"]
    i = int(np.argmax(onset_q))
    if onset_q[i] <= 0:
        return q * 0.5
    rate = (onset_s[i] - onset_s[0]) / max(onset_q[i] - onset_q[0], 1e-9)
    return float(onset_s[i] + (q - onset_q[i]) * rate)
