"""Synthetic learner errors with exact ground truth (``shared/eval/README.md``).

From a performance and its ground truth, at a fixed seed:
- missed: a share of the matched performed notes is removed; their score notes become deletions;
- wrong: a share of the other matched notes is shifted by ±1-2 semitones; the ground truth
  becomes insertion + deletion, and the pair is recorded as a substitution;
- extra: a share of the performed notes gets a new note ±1-12 semitones from it, 0-60 ms
  later; the ground truth gains an insertion.

A new or shifted pitch never lands on a key already struck within ``COLLISION_S``: one key
cannot sound twice at once, and a real keyboard would not report it. Nor does it land on the
pitch a shifted note had there: an extra note restoring a wrong note's written pitch would be
heard as that note played right, and the ground truth could not call it missed. A wrong note
never lands on a pitch written at the same onset (its chord, a grace note before it): played,
that is the other note played right and this one missed, not a wrong note (the learner
simulator follows the same rule).
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from bench.groundtruth import Case
from bench.metric import Triple

COLLISION_S = 0.1
LOWEST, HIGHEST = 21, 108  # the piano's keys


def case_seed(seed: int, name: str) -> int:
    """A per-performance seed that does not depend on which other files are in the run."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**32


def inject(
    case: Case,
    rate: float,
    seed: int,
    *,
    missed: bool = True,
    wrong: bool = True,
    extra: bool = True,
) -> Case:
    """A copy of ``case`` with ``rate`` of each chosen kind of error injected."""
    rng = np.random.default_rng(case_seed(seed, case.name))
    perf = case.perf.copy()
    written = perf["pitch"].copy()  # the pitches as played before any shift
    truth: set[Triple] = set(case.truth)
    substitutions = set(case.substitutions)
    matched = {pid: sid for label, sid, pid in truth if label == "match" and pid and sid}
    candidates = [i for i, pid in enumerate(perf["id"]) if str(pid) in matched]
    rng.shuffle(candidates)
    n_each = round(rate * len(candidates))

    drop: list[int] = candidates[:n_each] if missed else []
    keep = np.ones(len(perf), dtype=bool)
    for i in drop:
        pid = str(perf["id"][i])
        truth.discard(("match", matched[pid], pid))
        truth.add(("deletion", matched[pid], None))
        keep[i] = False

    if wrong:
        chord = _written_chords(case)
        shifted = 0
        for i in candidates[len(drop) :]:
            if shifted == n_each:
                break
            pid = str(perf["id"][i])
            new_pitch = _free_pitch(
                perf, i, rng, (-2, -1, 1, 2), before=written, avoid=chord.get(matched[pid])
            )
            if new_pitch is None:
                continue
            perf["pitch"][i] = new_pitch
            truth.discard(("match", matched[pid], pid))
            truth.add(("insertion", None, pid))
            truth.add(("deletion", matched[pid], None))
            substitutions.add((matched[pid], pid))
            shifted += 1

    added: list[tuple[str, int, float, float, int, int]] = []
    if extra:
        n_extra = round(rate * len(case.perf))
        taken = {str(x) for x in perf["id"]}
        steps = tuple(s for s in range(-12, 13) if s != 0)
        attempts = 0
        while len(added) < n_extra and attempts < 20 * max(n_extra, 1):
            attempts += 1
            j = int(rng.integers(len(perf)))
            onset = float(perf["onset_s"][j]) + float(rng.uniform(0.0, 0.06))
            pitch = _free_pitch(perf, j, rng, steps, at=onset, also=added, before=written)
            if pitch is None:
                continue
            pid = _fresh_id(taken, len(added))
            length = max(float(perf["offset_s"][j] - perf["onset_s"][j]), 0.05)
            velocity = int(np.clip(perf["velocity"][j] + rng.integers(-10, 11), 1, 127))
            added.append((pid, pitch, onset, onset + length, velocity, int(perf["channel"][j])))
            truth.add(("insertion", None, pid))

    out = perf[keep]
    if added:
        out = np.concatenate([out, np.array(added, dtype=perf.dtype)])
    out = out[np.lexsort((out["pitch"], out["onset_s"]))]
    return replace(
        case,
        name=case.name,
        perf=out,
        truth=truth,
        substitutions=substitutions,
    )


def _free_pitch(
    perf: npt.NDArray[np.void],
    j: int,
    rng: np.random.Generator,
    steps: tuple[int, ...],
    *,
    at: float | None = None,
    also: list[tuple[str, int, float, float, int, int]] | None = None,
    before: npt.NDArray[np.integer] | None = None,
    avoid: set[int] | None = None,
) -> int | None:
    """A pitch ``perf[j]``'s pitch + one of ``steps`` that no note near ``at`` uses, or used
    before it was shifted (``before``: the pitches of ``perf`` before any shift)."""
    onset = float(perf["onset_s"][j]) if at is None else at
    near = np.abs(perf["onset_s"] - onset) < COLLISION_S
    busy = {int(p) for p in perf["pitch"][near]}
    if before is not None:
        busy.update(int(p) for p in before[near])
    busy |= avoid or set()
    busy.update(p for _, p, t, *_ in also or () if abs(t - onset) < COLLISION_S)
    base = int(perf["pitch"][j])
    for step in rng.permutation(np.array(steps)):
        pitch = base + int(step)
        if LOWEST <= pitch <= HIGHEST and pitch not in busy:
            return pitch
    return None


def _written_chords(case: Case) -> dict[str, set[int]]:
    """Per score note: the pitches written at its onset (its chord, grace notes included)."""
    score = case.peer_score
    if len(score) == 0 or "onset_quarter" not in (score.dtype.names or ()):
        return {}
    by_onset: dict[float, set[int]] = {}
    for q, p in zip(score["onset_quarter"].tolist(), score["pitch"].tolist(), strict=True):
        by_onset.setdefault(float(q), set()).add(int(p))
    return {
        str(sid): by_onset[float(q)]
        for sid, q in zip(score["id"].tolist(), score["onset_quarter"].tolist(), strict=True)
    }


def _fresh_id(taken: set[str], k: int) -> str:
    pid = f"x{k}"
    while pid in taken:
        pid = "x" + pid
    taken.add(pid)
    return pid
