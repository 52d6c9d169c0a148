"""The score as the aligners see it: onset groups, per-pitch indexes and the practised part.

A score is cut into onset groups (all notes sounding together, chords in any order). Grace
notes form their own group just before the note they ornament, because they are played ahead
of its beat. Groups carry an *effective* onset in quarters, ``eq``, which places grace groups a
little before their main group so that expected times come out right.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sonata_engine.errors import SessionStateError
from sonata_engine.types import Measure, Position, Score, ScoreNotes, SessionOptions

#: Quarters a grace group is placed ahead of its main group (at most half the gap before it).
GRACE_LEAD_Q = 0.25
#: Passing an unplayed grace note costs this share of passing a main note.
GRACE_SKIP = 0.6
DEFAULT_SPQ = 0.5  # seconds per quarter at 120 bpm, when the score carries no tempo


def select_notes(score: Score, options: SessionOptions) -> ScoreNotes:
    """The notes the learner is asked to play under ``options`` (hands, bar range)."""
    notes = score.notes
    if options.first_bar is not None or options.last_bar is not None:
        notes = notes[_bar_range_mask(score, options)]
    if options.hands != "both":
        notes = notes[notes["hand"] != (1 if options.hands == "right" else 0)]
    # A unison written in two voices is one key: keep the longer note of each duplicate.
    order = np.lexsort((-notes["duration_q"], notes["pitch"], ~notes["is_grace"], notes["onset_q"]))
    notes = notes[order]
    if len(notes) > 1:
        same = (
            (notes["onset_q"][1:] == notes["onset_q"][:-1])
            & (notes["pitch"][1:] == notes["pitch"][:-1])
            & (notes["is_grace"][1:] == notes["is_grace"][:-1])
        )
        notes = notes[np.concatenate(([True], ~same))]
    return notes


def _bar_range_mask(score: Score, options: SessionOptions) -> npt.NDArray[np.bool_]:
    notes = score.notes
    first = options.first_bar if options.first_bar is not None else -(10**9)
    last = options.last_bar if options.last_bar is not None else 10**9
    if first > last:
        raise SessionStateError(f"bar range {first}-{last} is empty: first bar after last bar")
    in_range = (notes["measure"] >= first) & (notes["measure"] <= last)
    if not in_range.any():
        raise SessionStateError(f"bars {first}-{last} hold no notes in this score")
    # Repeats unfold a printed bar more than once: the loop is the first played run of it.
    idx = notes["measure_index"][in_range]
    start = int(idx.min())
    played = np.unique(idx)
    end = start
    for m in played[1:]:
        if m != end + 1:
            break
        end = int(m)
    mi = notes["measure_index"]
    mask: npt.NDArray[np.bool_] = in_range & (mi >= start) & (mi <= end)
    return mask


def nominal_spq(score: Score) -> float:
    """Seconds per quarter at the printed tempo where the piece starts."""
    if score.tempo_marks:
        first = min(score.tempo_marks, key=lambda m: m.onset_q)
        if first.bpm > 0:
            return 60.0 / first.bpm
    notes = score.notes
    if len(notes) >= 2:
        dq = float(notes["onset_q"].max() - notes["onset_q"].min())
        ds = float(notes["onset_s"].max() - notes["onset_s"].min())
        if dq > 0 and ds > 0:
            return ds / dq
    return DEFAULT_SPQ


@dataclass(slots=True)
class ScoreGraph:
    """Onset groups and indexes over the selected notes; read-only once built."""

    notes: ScoreNotes
    ids: list[str]
    pitch: list[int]
    grace: list[bool]
    group_of: list[int]  # note -> group
    g_first: list[int]  # group -> first note index (notes are sorted by group)
    g_end: list[int]  # group -> one past its last note
    g_eq: list[float]  # effective onset, quarters
    g_q: list[float]  # written onset, quarters
    g_grace: list[bool]
    g_weight: list[float]  # what passing the group's notes unplayed costs
    g_weight_right: list[float]  # ... its right-hand notes
    by_pitch: dict[int, list[int]]  # pitch -> note indices, ascending
    by_pitch_groups: dict[int, list[int]]  # pitch -> group of each of those notes
    pitch_group_arr: dict[int, npt.NDArray[np.int64]]
    note_count_upto: npt.NDArray[np.int64]  # group -> non-grace notes in the groups before it
    measures: list[Measure]
    spq0: float  # printed seconds per quarter at the start
    g_eq_arr: npt.NDArray[np.float64]  # g_eq as an array
    g_bar_start_arr: npt.NDArray[np.bool_]  # the group opens its bar
    g_measure_arr: npt.NDArray[np.int64]  # the group's bar, played order
    g_chord_arr: npt.NDArray[np.int64]  # the group's pitch set as a number (equal sets, equal)
    #: per note, as plain numbers for the per-note judgements: printed bar, beat, onset in
    #: quarters, marked velocity, hand
    measure: list[int]
    beat: list[float]
    onset_q: list[float]
    velocity_mark: list[int]
    hand: list[int]

    @property
    def n_groups(self) -> int:
        return len(self.g_first)

    @classmethod
    def build(cls, score: Score, options: SessionOptions) -> ScoreGraph:
        if not 1.0 <= options.tempo_percent <= 1000.0:
            raise SessionStateError(
                f"tempo_percent {options.tempo_percent} is outside 1-1000 percent"
            )
        if not 0.0 <= options.strictness <= 1.0:
            raise SessionStateError(f"strictness {options.strictness} is outside 0-1")
        notes = select_notes(score, options)
        if len(notes) == 0:
            raise SessionStateError(f"no score notes to play for hands={options.hands!r}")
        q = notes["onset_q"].tolist()
        grace = notes["is_grace"].tolist()
        g_first: list[int] = []
        g_end: list[int] = []
        g_q: list[float] = []
        g_grace: list[bool] = []
        group_of: list[int] = []
        for i in range(len(notes)):
            key_changed = not g_first or q[i] != g_q[-1] or grace[i] != g_grace[-1]
            if key_changed:
                if g_first:
                    g_end.append(i)
                g_first.append(i)
                g_q.append(q[i])
                g_grace.append(bool(grace[i]))
            group_of.append(len(g_first) - 1)
        g_end.append(len(notes))
        g_eq = list(g_q)
        for g in range(len(g_q)):
            if g_grace[g]:
                gap = g_q[g] - g_q[g - 1] if g > 0 else GRACE_LEAD_Q * 2
                g_eq[g] = g_q[g] - min(GRACE_LEAD_Q, 0.5 * max(gap, 0.0))
        pitch = [int(p) for p in notes["pitch"].tolist()]
        by_pitch: dict[int, list[int]] = {}
        for i, p in enumerate(pitch):
            by_pitch.setdefault(p, []).append(i)
        by_pitch_groups = {p: [group_of[i] for i in lst] for p, lst in by_pitch.items()}
        return cls(
            notes=notes,
            ids=[str(s) for s in notes["id"].tolist()],
            pitch=pitch,
            grace=[bool(g) for g in grace],
            group_of=group_of,
            g_first=g_first,
            g_end=g_end,
            g_eq=g_eq,
            g_q=g_q,
            g_grace=g_grace,
            g_weight=[
                (GRACE_SKIP if g_grace[g] else 1.0) * (g_end[g] - g_first[g])
                for g in range(len(g_first))
            ],
            g_weight_right=[
                (GRACE_SKIP if g_grace[g] else 1.0)
                * int(np.sum(notes["hand"][g_first[g] : g_end[g]] == 0))
                for g in range(len(g_first))
            ],
            by_pitch=by_pitch,
            by_pitch_groups=by_pitch_groups,
            pitch_group_arr={p: np.asarray(v, dtype=np.int64) for p, v in by_pitch_groups.items()},
            note_count_upto=np.concatenate(
                (
                    [0],
                    np.cumsum(
                        [0 if g_grace[g] else g_end[g] - g_first[g] for g in range(len(g_first))]
                    ),
                )
            ).astype(np.int64),
            measures=sorted(score.measures, key=lambda m: m.start_q),
            spq0=nominal_spq(score),
            g_eq_arr=np.asarray(g_eq, dtype=np.float64),
            g_bar_start_arr=np.abs(notes["beat"][g_first] - 1.0) < 1e-6,
            g_measure_arr=notes["measure_index"][g_first].astype(np.int64),
            g_chord_arr=np.add.reduceat(
                np.left_shift(np.int64(1), notes["pitch"].astype(np.int64) % 63), g_first
            )
            + np.add.reduceat(notes["pitch"].astype(np.int64), g_first) * (1 << 20),
            measure=[int(m) for m in notes["measure"].tolist()],
            beat=[float(b) for b in notes["beat"].tolist()],
            onset_q=q,
            velocity_mark=[int(v) for v in notes["velocity_mark"].tolist()],
            hand=[int(h) for h in notes["hand"].tolist()],
        )

    def candidates(self, pitch: int, g_lo: int, g_hi: int) -> list[int]:
        """Note indices of ``pitch`` whose group lies in ``[g_lo, g_hi]``."""
        groups = self.by_pitch_groups.get(pitch)
        if groups is None:
            return []
        lst = self.by_pitch[pitch]
        out: list[int] = []
        for k in range(bisect_left(groups, g_lo), len(groups)):
            if groups[k] > g_hi:
                break
            out.append(lst[k])
        return out

    def position_of_group(self, g: int) -> Position:
        i = self.g_first[g]
        return Position(measure=self.measure[i], beat=self.beat[i], onset_q=self.g_q[g])

    def note_name(self, i: int) -> str:
        return pitch_name(self.pitch[i])


_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")


def pitch_name(p: int) -> str:
    return f"{_NAMES[p % 12]}{p // 12 - 1}"
