"""``align_offline``: the whole performance against the score, with hindsight.

1. The live follower runs over the performance once more (it is cheap) to find where the
   learner was at each moment and which passes over the score they made (restarts, jumps).
2. For each pass, a monotone time map (score quarters -> seconds) is fitted through the onset
   groups the follower matched, and every score note gets an expected time.
3. Each pitch is aligned on its own with an order-preserving dynamic programme against those
   expected times (``pitchdp``); the map is refitted from the result and the step repeated.
4. A played note matched far from its score note's time, where an unmatched score note one or
   two semitones away was due, is that note played wrong rather than the other played late or
   early: the match is released. Left-over played notes and left-over score notes close in time
   and one or two semitones apart are then paired as wrong pitches.
5. Each pass is one attempt (``AlignmentPass``): a score note played in several passes (a
   restart, a jump back) is matched once in each; notes skipped inside a pass are missed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from statistics import median

import numpy as np

from sonata_engine.live.follower import JUMP_COST, MATCHED, Follower
from sonata_engine.offline.pitchdp import align_pitch
from sonata_engine.offline.timemap import TimeMap
from sonata_engine.scoregraph import ScoreGraph
from sonata_engine.types import (
    AlignmentPass,
    AlignmentResult,
    PassKind,
    Performance,
    Score,
    SessionOptions,
)

DEFAULT_OPTIONS = SessionOptions()
ITERATIONS = 2
#: With the whole performance at hand a jump can wait for more evidence than live.
CAUTIOUS_JUMP_COST = 14.0
MARGIN_GROUPS = 2  # score groups either side of a pass that may still be matched
SIGMA_S = 0.05  # spread of a note around its expected time, seconds ...
SIGMA_Q = 0.12  # ... plus this many quarters at the local tempo
GRACE_SIGMA_S = 0.12  # grace notes wander more
WRONG_WINDOW_Q = 0.5  # a wrong pitch sits at most this far (quarters) from the note it replaced
WRONG_WINDOW_MIN_S = 0.12
#: What calling a played note a wrong pitch costs beyond its timing, in the units of
#: ``pitchdp`` (0.5 z^2): a match is released only when the note fits the other score note's
#: time this much better (as much as skipping a note costs).
WRONG_PRICE = 2.0


class _Pass:
    """One pass over the score: its played notes and its result."""

    def __init__(self) -> None:
        self.perf: list[int] = []
        self.seeds: list[tuple[int, int]] = []  # (score note, played note) from the follower
        self.matches: dict[int, int] = {}
        self.wrong: dict[int, int] = {}


def align_offline(
    score: Score,
    performance: Performance,
    options: SessionOptions = DEFAULT_OPTIONS,
    live: Follower | None = None,
) -> AlignmentResult:
    """``live``: the follower of the session that heard this performance, note for note, if
    there was one (it saves running that hypothesis again)."""
    graph = live.g if live is not None else ScoreGraph.build(score, options)
    notes = performance.notes
    order = np.argsort(notes["onset_s"], kind="stable")
    ids = [str(i) for i in notes["id"][order].tolist()]
    onset = [float(t) for t in notes["onset_s"][order].tolist()]
    pitch = [int(p) for p in notes["pitch"][order].tolist()]

    # Two readings of where the learner was: the live one, quick to believe in a jump, and a
    # cautious one that wants more evidence. The one that placed the notes more cheaply wins.
    # The live session compared places after each break on a few notes; the plain follower
    # relocates on more evidence; the cautious one on more still. A reading with more jumps
    # must save at least the price of one to be believed.
    readings = [] if live is None else [live]
    readings.append(_follow(Follower(graph, options, track_breaks=False), onset, pitch))
    cautious = _follow(
        Follower(graph, options, jump_cost=CAUTIOUS_JUMP_COST, reentry=False), onset, pitch
    )
    best = cautious
    for reading in readings:
        if reading.total_cost + JUMP_COST < best.total_cost:
            best = reading
    return align_followed(graph, best, ids, onset, pitch)


def _follow(follower: Follower, onset: list[float], pitch: list[int]) -> Follower:
    for k in range(len(onset)):
        follower.on_note(onset[k], pitch[k], k)
    return follower


def align_followed(
    graph: ScoreGraph, follower: Follower, ids: list[str], onset: list[float], pitch: list[int]
) -> AlignmentResult:
    """The offline steps 2-5 over a follower that has already seen the notes, in onset order."""
    passes: dict[int, _Pass] = defaultdict(_Pass)
    for k, (pass_no, j, code) in enumerate(follower.assign):
        p = passes[pass_no]
        p.perf.append(k)
        if code == MATCHED and j >= 0:
            p.seeds.append((j, k))
    for p in passes.values():
        _align_pass(graph, p, onset, pitch)
    return _assemble(graph, passes, ids, onset)


def _align_pass(graph: ScoreGraph, p: _Pass, onset: list[float], pitch: list[int]) -> None:
    if not p.seeds:
        return
    groups = [graph.group_of[j] for j, _ in p.seeds]
    g_lo = max(0, min(groups) - MARGIN_GROUPS)
    g_hi = min(graph.n_groups - 1, max(groups) + MARGIN_GROUPS)
    s_notes = list(range(graph.g_first[g_lo], graph.g_end[g_hi]))
    s_eq = np.asarray([graph.g_eq[graph.group_of[j]] for j in s_notes], dtype=np.float64)
    s_by_pitch: dict[int, list[int]] = defaultdict(list)
    for a, j in enumerate(s_notes):
        s_by_pitch[graph.pitch[j]].append(a)
    p_by_pitch: dict[int, list[int]] = defaultdict(list)
    for k in p.perf:
        p_by_pitch[pitch[k]].append(k)

    pairs = p.seeds
    for _ in range(ITERATIONS):
        tm = _time_map(graph, pairs, onset)
        expected = tm(s_eq)
        sigma = SIGMA_S + SIGMA_Q * tm.local_spq(s_eq)
        found: list[tuple[int, int]] = []
        for pt, s_list in s_by_pitch.items():
            p_list = p_by_pitch.get(pt)
            if not p_list:
                continue
            s_t = [float(expected[a]) for a in s_list]
            s_sig = [
                float(sigma[a]) + (GRACE_SIGMA_S if graph.grace[s_notes[a]] else 0.0)
                for a in s_list
            ]
            p_t = [onset[k] for k in p_list]
            for a, b in align_pitch(s_t, s_sig, p_t):
                found.append((s_notes[s_list[a]], p_list[b]))
        pairs = found if found else pairs
    p.matches = dict(pairs)
    _release_misplaced(graph, p, s_notes, expected, sigma, tm, s_eq, onset, pitch)
    _pair_wrong(graph, p, s_notes, expected, tm, s_eq, onset, pitch)


def _time_map(graph: ScoreGraph, pairs: list[tuple[int, int]], onset: list[float]) -> TimeMap:
    by_group: dict[int, list[float]] = defaultdict(list)
    for j, k in pairs:
        if not graph.grace[j]:
            by_group[graph.group_of[j]].append(onset[k])
    gs = sorted(by_group)
    return TimeMap([graph.g_eq[g] for g in gs], [median(by_group[g]) for g in gs], graph.spq0)


def _release_misplaced(
    graph: ScoreGraph,
    p: _Pass,
    s_notes: list[int],
    expected: np.ndarray,
    sigma: np.ndarray,
    tm: TimeMap,
    s_eq: np.ndarray,
    onset: list[float],
    pitch: list[int],
) -> None:
    """Undo the matches that a wrong pitch explains clearly better.

    Each pitch was aligned on its own, so a note played one or two semitones off can take a
    score note of its own pitch a beat away (whose own played note, if any, is then left over)
    while the note it replaced, due right then, looks missed. When the played note fits that
    unmatched note's time better by more than ``WRONG_PRICE`` (in the dynamic programme's units,
    0.5 z^2), the match goes; ``_pair_wrong`` then pairs the note with the one it replaced.
    """
    at = {j: a for a, j in enumerate(s_notes)}
    grace = [GRACE_SIGMA_S if graph.grace[j] else 0.0 for j in s_notes]
    window = np.maximum(WRONG_WINDOW_MIN_S, WRONG_WINDOW_Q * tm.local_spq(s_eq))
    left = sorted((float(expected[a]), a) for a, j in enumerate(s_notes) if j not in p.matches)
    if not left:
        return
    times = [t for t, _ in left]
    reach = float(window.max())
    release: list[int] = []
    for j, k in p.matches.items():
        a = at[j]
        z = (onset[k] - float(expected[a])) / (float(sigma[a]) + grace[a])
        cost = 0.5 * z * z
        if cost <= WRONG_PRICE:
            continue
        t = onset[k]
        for x in range(bisect_left(times, t - reach), len(left)):
            te, b = left[x]
            if te - t > reach:
                break
            if abs(te - t) > window[b] or not 1 <= abs(graph.pitch[s_notes[b]] - pitch[k]) <= 2:
                continue
            zb = (t - te) / (float(sigma[b]) + grace[b])
            if cost > 0.5 * zb * zb + WRONG_PRICE:
                release.append(j)
                break
    for j in release:
        del p.matches[j]


def _pair_wrong(
    graph: ScoreGraph,
    p: _Pass,
    s_notes: list[int],
    expected: np.ndarray,
    tm: TimeMap,
    s_eq: np.ndarray,
    onset: list[float],
    pitch: list[int],
) -> None:
    used = set(p.matches.values())
    left_s = sorted((float(expected[a]), j) for a, j in enumerate(s_notes) if j not in p.matches)
    if not left_s:
        return
    times = [t for t, _ in left_s]
    window = np.maximum(WRONG_WINDOW_MIN_S, WRONG_WINDOW_Q * tm.local_spq(s_eq))
    win_of = {j: float(window[a]) for a, j in enumerate(s_notes)}
    taken: set[int] = set()
    options: list[tuple[float, int, int]] = []
    for k in p.perf:
        if k in used:
            continue
        t = onset[k]
        lo = bisect_left(times, t - 2.0)
        for x in range(lo, len(left_s)):
            te, j = left_s[x]
            if te > t + 2.0:
                break
            dp = abs(graph.pitch[j] - pitch[k])
            if 1 <= dp <= 2 and abs(te - t) <= win_of[j]:
                options.append((abs(te - t) / win_of[j] + 0.5 * (dp - 1), j, k))
    options.sort()
    for _, j, k in options:
        if j in taken or k in used:
            continue
        taken.add(j)
        used.add(k)
        p.wrong[j] = k


def _assemble(
    graph: ScoreGraph, passes: dict[int, _Pass], ids: list[str], onset: list[float]
) -> AlignmentResult:
    out: list[AlignmentPass] = []
    matches: list[tuple[str, str]] = []
    wrong: list[tuple[str, str]] = []
    used: set[int] = set()
    played: set[int] = set()
    missed: set[int] = set()
    for pass_no in sorted(passes):
        p = passes[pass_no]
        named = {**p.matches, **p.wrong}
        if not named:
            continue
        groups = [graph.group_of[j] for j in named]
        g_lo, g_hi = min(groups), max(groups)
        skipped = [j for j in range(graph.g_first[g_lo], graph.g_end[g_hi]) if j not in named]
        mi = graph.notes["measure_index"]
        first_m, last_m = int(mi[graph.g_first[g_lo]]), int(mi[graph.g_end[g_hi] - 1])
        kind: PassKind = "start"
        if out:
            back = out[-1].last_measure_index - first_m
            kind = "restart" if 0 <= back <= 1 else "jump back" if back > 1 else "jump ahead"
        times = [onset[k] for k in named.values()]
        pm = [(graph.ids[j], ids[k]) for j, k in sorted(p.matches.items())]
        pw = [(graph.ids[j], ids[k]) for j, k in sorted(p.wrong.items())]
        out.append(
            AlignmentPass(
                index=len(out),
                kind=kind,
                first_measure_index=first_m,
                last_measure_index=last_m,
                start_s=min(times),
                end_s=max(times),
                matches=pm,
                wrong_pitch=pw,
                missed=[graph.ids[j] for j in skipped],
            )
        )
        matches += pm
        wrong += pw
        used.update(named.values())
        played.update(named)
        missed.update(skipped)
    n = len(graph.ids)
    missed.update(j for j in range(n) if j not in played)
    return AlignmentResult(
        matches=matches,
        wrong_pitch=wrong,
        extra=[ids[k] for k in range(len(ids)) if k not in used],
        missed=[graph.ids[j] for j in sorted(missed)],
        passes=out,
    )
