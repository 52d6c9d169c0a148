"""Finding where a run of notes the follower could not place was really played.

The run's pitches are looked up in the whole score through per-pitch arrays of onset groups:
for every group holding the last pitch, ``searchsorted`` walks back through the earlier pitches
(at most a few groups apart each). That is a handful of vectorised look-ups on small arrays,
so the cost does not grow with the length of the piece.
"""

from __future__ import annotations

import numpy as np

from sonata_engine.scoregraph import ScoreGraph

BACK_GROUPS = 4  # the follower looks this many onset groups behind its pointer
FIT_GAP_GROUPS = 4  # consecutive run notes may lie at most this many groups apart
FIT_SURE_RUN = 6  # with this many notes in the run, the nearest place that fits is taken
FIT_DENSITY = 0.6  # the run must cover this share of the notes where it fits
LOCAL_RESYNC_RUN = 5  # a run this long may move the follower ahead within its own window
LOCAL_AHEAD_GROUPS = 4  # beyond this the note-by-note follower would have to skip too much


def find_jump(graph: ScoreGraph, pitches: list[int], cur: int) -> list[int] | None:
    """Groups where the whole run fits in order, if one place fits clearly best."""
    fits = _chains(graph, pitches)
    if fits is None:
        return None
    chain, valid = fits  # first note first
    starts, ends = chain[0], chain[-1]
    # The run must not fit only by reusing one group for everything, and must cover most
    # of the notes where it fits: a replay plays them, a chance fit skips many.
    valid &= ends > starts
    span = graph.note_count_upto[np.minimum(ends + 1, len(graph.note_count_upto) - 1)]
    span = span - graph.note_count_upto[np.maximum(starts, 0)]
    valid &= len(pitches) >= FIT_DENSITY * span
    if cur >= 0:
        local = (ends >= cur - BACK_GROUPS) & (starts <= cur + LOCAL_AHEAD_GROUPS)
        if (valid & local).any():
            # It fits where the note-by-note follower is looking. Follow it there only
            # when the follower is plainly stuck (a long run, several pitches, ahead).
            if len(set(pitches)) < 3:
                return None  # a trill or a repeated figure, not a new place
            ahead = valid & local & (starts > cur)
            if len(pitches) >= LOCAL_RESYNC_RUN and ahead.any():
                pick = int(np.flatnonzero(ahead)[0])
                return [int(c[pick]) for c in chain]
            # Notes just played, played again over several groups: a short restart.
            behind = np.flatnonzero(valid & local & (starts <= cur))
            for pick in behind[::-1].tolist():
                groups = [int(c[pick]) for c in chain]
                if len(set(groups)) >= 3:
                    return groups
            return None
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return None
    dist = ends[idx] - max(cur, 0)
    key = 2 * np.abs(dist) + (dist < 0)
    order = np.argsort(key, kind="stable")
    pick = int(idx[order[0]])
    lo, hi = int(starts[pick]), int(ends[pick])
    same = idx[(starts[idx] <= hi) & (ends[idx] >= lo)]
    pick = int(same[np.lexsort((ends[same], ends[same] - starts[same]))[0]])
    if len(pitches) < FIT_SURE_RUN:
        for o in order[1:].tolist():
            other = int(idx[o])
            if int(starts[other]) <= hi and lo <= int(ends[other]):
                continue  # the same place, fitted a little differently
            if int(key[o]) < 2 * int(key[order[0]]) + 2 * FIT_GAP_GROUPS:
                return None  # two places fit about as well: wait for another note
            break
    return [int(c[pick]) for c in chain]


#: Re-entry: what each kind of misfit costs when ranking the places a segment could be.
SKIP_WEIGHT = 1.0  # per score note of the place's span the segment did not play
TIME_WEIGHT = 4.0  # per unit of relative timing residual (chords split, steps out of proportion)
OFF_BAR_COST = 0.75  # a learner going back starts at the beginning of a bar, mostly
TEMPO_WEIGHT = 0.5  # per unit of |log| tempo change against the tempo before the break
DISTANCE_WEIGHT = 0.03  # per bar between the place and where the follower was
DISTANCE_CAP = 0.6
CLEAR_MARGIN = 1.5  # the best place must beat the runner-up (elsewhere) by this much
REENTRY_PLACES = 64  # at most this many places (the nearest) are ranked


def _chains(graph: ScoreGraph, pitches: list[int]) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Every place where ``pitches`` fit in order (each at or after the one before, at most
    FIT_GAP_GROUPS on): the chain of groups per place, first note first, and which are valid."""
    arrs = graph.pitch_group_arr
    last = arrs.get(pitches[-1])
    if last is None:
        return None
    valid = np.ones(len(last), dtype=bool)
    chain = [last]
    prev = last
    for p in reversed(pitches[:-1]):
        arr = arrs.get(p)
        if arr is None:
            return None
        k = np.searchsorted(arr, prev, side="right") - 1
        ok = k >= 0
        got = np.where(ok, arr[np.maximum(k, 0)], -(10**9))
        valid &= ok & (prev - got <= FIT_GAP_GROUPS)
        chain.append(got)
        prev = got
    return chain[::-1], valid


def place_costs(graph: ScoreGraph, chain: np.ndarray, times: np.ndarray, spq: float) -> np.ndarray:
    """How badly a segment of notes fits each place: ``chain`` is (notes, places) of groups.

    Unplayed notes inside the place's span, timing out of proportion with the score (a line
    through (score position, time) over the segment, residual relative to the span), a tempo
    far from the learner's, and not starting a bar.
    """
    starts, ends = chain[0], chain[-1]
    nc = graph.note_count_upto
    span = nc[np.minimum(ends + 1, len(nc) - 1)] - nc[starts]
    skipped = np.maximum(span - chain.shape[0], 0).astype(np.float64)
    eq = graph.g_eq_arr[chain]  # (notes, places)
    q = eq - eq[0]
    t = (times - times[0])[:, None]
    dq = q[-1]
    dt = float(times[-1] - times[0])
    fit_spq = np.where(dq > 0, dt / np.where(dq > 0, dq, 1.0), spq)
    fit_spq = np.clip(fit_spq, spq / 4.0, spq * 4.0)
    resid = t - q * fit_spq[None, :]
    scale = max(dt, 0.25)
    timing = np.sqrt(np.mean(resid * resid, axis=0)) / scale
    tempo = np.abs(np.log(fit_spq / spq))
    off_bar = ~graph.g_bar_start_arr[starts]
    cost: np.ndarray = (
        SKIP_WEIGHT * skipped + TIME_WEIGHT * timing + TEMPO_WEIGHT * tempo + OFF_BAR_COST * off_bar
    )
    return cost


def find_reentry(
    graph: ScoreGraph, pitches: list[int], times: list[float], spq: float, cur: int
) -> tuple[list[int], float, float] | None:
    """The place a segment of notes played after a break fits best, anywhere in the score:
    (its groups, its cost, the cost of the best place elsewhere) if it fits somewhere. Of
    places the notes fit equally well (a repeat, a theme coming back), the nearest wins."""
    found = _chains(graph, pitches)
    if found is None:
        return None
    chain_list, valid = found
    valid &= chain_list[-1] > chain_list[0]
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return None
    if len(idx) > REENTRY_PLACES:
        # a common figure in a long piece: the places nearest to the follower are enough,
        # and the work per note stays bounded
        near = np.abs(chain_list[0][idx] - max(cur, 0))
        idx = idx[np.argpartition(near, REENTRY_PLACES)[:REENTRY_PLACES]]
    chain = np.stack([c[idx] for c in chain_list])
    cost = place_costs(graph, chain, np.asarray(times, dtype=np.float64), spq)
    if cur >= 0:
        mi = graph.g_measure_arr
        bars = np.abs(mi[chain[0]] - mi[cur]).astype(np.float64)
        cost = cost + np.minimum(DISTANCE_WEIGHT * bars, DISTANCE_CAP)
    best = int(np.argmin(cost))
    lo, hi = int(chain[0, best]), int(chain[-1, best])
    elsewhere = (chain[0] > hi) | (chain[-1] < lo)
    # Places holding the same chords (a repeat) are one answer for the ear: not a rival.
    chords = graph.g_chord_arr[chain]
    elsewhere &= np.any(chords != chords[:, best : best + 1], axis=0)
    runner = float(cost[elsewhere].min()) if elsewhere.any() else float("inf")
    return [int(g) for g in chain[:, best]], float(cost[best]), runner
