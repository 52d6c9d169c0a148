"""Where the learner went on after a break: competing places, compared note by note.

A break in the playing is where learners restart a bar, go back a few bars or skip ahead.
From the first note after it, a handful of places are followed side by side, each by a small
model of the follower: carrying on where the learner was (the follower's own reading), and
the start of every bar within ``BAR_RANGE`` bars of it and of the piece or loop, and the
chord the learner was on or one just before it, played again. Each place
pays for the notes it cannot explain (a near miss of one or two semitones pays less), for
chord notes arriving long after their chord and for steps out of proportion with the tempo,
and carries a prior for how likely a learner is to go there: the next bar (carrying on past a
few notes) and restarting the bar are the commonest, then the bars just before, then the bars
further on. The follower moves to another place once it explains at least two notes, all of
them nearly as written, and better than the place the follower stands on by a margin (a
smaller one once it explains more notes, or after a long break, or when the place it stands
on was itself a guess made since the break and the other explains every note); it moves back
the same way if the notes after show it wrong. After ``TRACK_NOTES`` notes the place it
stands on is kept.

Each place looks at most ``STEP_GROUPS`` onset groups ahead per note and there are at most
``2 * BAR_RANGE + 3`` places, so a note costs a bounded amount of work whatever the length of
the piece.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sonata_engine.scoregraph import ScoreGraph

TRACK_NOTES = 12  # notes after a break during which places compete
BAR_RANGE = 12  # bars either side of the break that a learner may go to
STEP_GROUPS = 3  # a place moves on at most this many onset groups per note
CARRY_ON_GROUPS = 8  # ... carrying on after a hesitation, at the first note
MISS_COST = 2.0  # a note a place cannot explain at all
WRONG_COST = 1.0  # a note one or two semitones from a note the place expects next
BEHIND_COST = 0.8  # carrying on: a late note of a chord the learner had already passed
LEAVE_WEIGHT = 0.5  # moving on leaves the rest of a chord behind: cheap, not free
PRIOR_RESTART = 0.5  # the learner starts the bar they were in again
PRIOR_BACK = 0.8  # ... a bar before it, plus PRIOR_PER_BAR per bar
PRIOR_NEXT = 0.3  # ... the next bar: carrying on, past a few notes left out
PRIOR_AHEAD = 1.0  # ... a bar further on
PRIOR_PER_BAR = 0.04
PRIOR_TOP = 1.0  # the start of the piece or of the practised bars
REPLAY_GROUPS = 3  # ... the chord the learner was on or one of the chords just before it
PRIOR_REPLAY = 0.9
PRIOR_PER_GROUP = 0.1
#: Timing inside a reading: a note joining a chord long after it began, or a step to a later
#: chord out of proportion with the learner's tempo before the break (log ratio).
CHORD_S = 0.12  # a chord's notes arrive within this, plus CHORD_REL of a quarter
CHORD_REL = 0.1
SIGMA_RATIO = 0.4
TIME_CAP = 1.0
RATIO_EPS_S = 0.06
SWITCH_MARGIN = 1.5  # another place must explain the notes this much better to move there
SURE_PLACED = 4  # ... or, once it has placed this many notes (or after a long break),
SURE_MARGIN = 1.0  # ... this much better
EXACT_COST = 0.3  # after a long break, a place that explains every note this well
EXACT_MARGIN = 0.4  # ... needs only this much
EXACT_PLACED = 3  # ... once it has placed this many
#: the place moved to explains the notes at most this badly: a learner going back plays what
#: is written there, and the first notes after a jump are rarely the ones that go wrong
FIT_BASE = 0.6
FIT_PER_NOTE = 0.15
MIN_PLACED = 2  # one note is no evidence for a place: a slip or an ornament fits many
WRONG_STEPS = (-1, 1, -2, 2)

PLACE_NONE, PLACE_RIGHT, PLACE_WRONG = 0, 1, 2


@dataclass(slots=True)
class Place:
    """One reading of where the notes since the break were played."""

    start: int  # first group the reading may use
    prior: float
    carry_on: bool  # where the learner was before the break
    pos: int  # group of the last note placed; start - 1 before any
    taken: list[int] = field(default_factory=list)  # score notes of group ``pos`` already used
    pos_t: float | None = None  # when the learner reached group ``pos``
    behind: list[int] = field(default_factory=list)  # carrying on: unplayed notes just behind
    cost: float = 0.0
    #: per note since the break: (score note or -1, PLACE_RIGHT / PLACE_WRONG / PLACE_NONE)
    notes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.prior + self.cost

    @property
    def placed(self) -> int:
        return sum(1 for _, kind in self.notes if kind == PLACE_RIGHT)


def places(
    graph: ScoreGraph, cur: int, cur_taken: list[int], behind: list[int], bar_first: list[int]
) -> list[Place]:
    """The places to follow after a break, the learner having last reached group ``cur``
    (``cur_taken``: its notes played; ``behind``: notes left unplayed just before it)."""
    out = [Place(max(cur, 0), 0.0, True, cur, list(cur_taken), behind=list(behind))]
    if cur < 0:
        return out
    bar = int(graph.g_measure_arr[cur])
    n_bars = len(bar_first)
    seen = set()
    for b in range(max(bar - BAR_RANGE, 0), min(bar + BAR_RANGE, n_bars - 1) + 1):
        g = bar_first[b]
        if g < 0 or g in seen:
            continue
        seen.add(g)
        d = b - bar
        if d == 0:
            prior = PRIOR_RESTART
        elif d == 1:
            prior = PRIOR_NEXT
        elif d < 0:
            prior = PRIOR_BACK + PRIOR_PER_BAR * -d
        else:
            prior = PRIOR_AHEAD + PRIOR_PER_BAR * d
        if g == 0:
            prior = min(prior, PRIOR_TOP)
        out.append(Place(g, prior, False, g - 1))
    if 0 not in seen:
        out.append(Place(0, PRIOR_TOP, False, -1))
    for back in range(REPLAY_GROUPS):
        # playing again from the chord the learner was on, or one or two before it
        g = cur - back
        if g >= 0 and g not in seen and not graph.g_grace[g]:
            seen.add(g)
            out.append(Place(g, PRIOR_REPLAY + PRIOR_PER_GROUP * back, False, g - 1))
    return out


def bar_first_groups(graph: ScoreGraph) -> list[int]:
    """Per bar (played order): its first onset group (a grace group opening a bar belongs to
    it), -1 for a bar without notes."""
    measures = graph.g_measure_arr.tolist()
    out = [-1] * ((max(measures) + 1) if measures else 0)
    for g, m in enumerate(measures):
        if out[m] < 0:
            out[m] = g
    return out


def step(graph: ScoreGraph, place: Place, pitch: int, t: float, spq: float) -> None:
    """Explain one more note, played at ``t``, from ``place``: the cheapest unused note of
    that pitch at or after its pointer, else a note one or two semitones off, else none."""
    first = not place.notes
    reach = CARRY_ON_GROUPS if (first and place.carry_on) else STEP_GROUPS
    lo = max(place.pos, place.start)
    hi = min(place.pos + reach, graph.n_groups - 1)
    best = (MISS_COST, -1, PLACE_NONE, -1)  # cost, note, kind, group
    skip = 0.0
    for g in range(lo, hi + 1):
        if g == place.pos + 1 and place.pos >= place.start:
            skip = LEAVE_WEIGHT * _left(graph, place.pos, place.taken)
        elif g > place.pos + 1:
            skip += graph.g_weight[g - 1]
        if skip >= best[0]:
            break
        here = skip + _time_cost(graph, place, g, t, spq)
        if here >= best[0]:
            continue
        used = place.taken if g == place.pos else ()
        for j in range(graph.g_first[g], graph.g_end[g]):
            if j in used:
                continue
            p = graph.pitch[j]
            if p == pitch and here < best[0]:
                best = (here, j, PLACE_RIGHT, g)
            elif p - pitch in WRONG_STEPS and here + WRONG_COST < best[0]:
                best = (here + WRONG_COST, j, PLACE_WRONG, g)
        if best[2] == PLACE_RIGHT and best[3] == g:
            break
    if best[2] != PLACE_RIGHT and best[0] > BEHIND_COST:
        for j in place.behind:
            if graph.pitch[j] == pitch:
                best = (BEHIND_COST, j, PLACE_RIGHT, -1)
                break
    cost, j, kind, g = best
    place.cost += cost
    place.notes.append((j, kind))
    if j < 0:
        return
    if g < 0:
        place.behind.remove(j)
    elif g == place.pos:
        place.taken.append(j)
    else:
        place.pos = g
        place.pos_t = t
        place.taken = [j]


def _time_cost(graph: ScoreGraph, place: Place, g: int, t: float, spq: float) -> float:
    if place.pos_t is None:
        return 0.0
    dt = t - place.pos_t
    if g == place.pos:
        return TIME_CAP if dt > CHORD_S + CHORD_REL * spq else 0.0
    due = (graph.g_eq[g] - graph.g_eq[place.pos]) * spq
    r = math.log((max(dt, 0.0) + RATIO_EPS_S) / (max(due, 0.0) + RATIO_EPS_S))
    return min(0.5 * (r / SIGMA_RATIO) ** 2, TIME_CAP)


def _follow(graph: ScoreGraph, place: Place, followed: tuple[int, int, float], t: float) -> None:
    """Take the follower's own placement of a note as the reading of ``place``."""
    j, kind, cost = followed
    if j < 0:
        place.cost += MISS_COST
        place.notes.append((-1, PLACE_NONE))
        return
    place.cost += WRONG_COST if kind == PLACE_WRONG else min(cost, MISS_COST)
    place.notes.append((j, kind))
    g = graph.group_of[j]
    if j in place.behind:
        place.behind.remove(j)
    if g == place.pos:
        place.taken.append(j)
    elif g > place.pos:
        place.pos, place.pos_t, place.taken = g, t, [j]


def _left(graph: ScoreGraph, g: int, taken: list[int]) -> float:
    return float(graph.g_end[g] - graph.g_first[g] - len(taken))


@dataclass(slots=True)
class Tracker:
    """The places followed since the last break, and which one the follower stands on."""

    places: list[Place]
    active: Place
    margin: float  # how much better another place must explain the notes to move there
    long: bool = False  # after a long break
    notes: list[tuple[int, float, int]] = field(default_factory=list)  # pitch, time, index

    def feed(
        self,
        graph: ScoreGraph,
        note: tuple[int, float, int],
        spq: float,
        followed: tuple[int, int, float] | None,
    ) -> Place | None:
        """Step every place with one note (pitch, time, performed index); the place to move
        to, if one now explains the notes clearly better than the one the follower stands on.
        ``followed``: how the follower itself placed the note (score note or -1, PLACE_RIGHT /
        PLACE_WRONG / PLACE_NONE, the notes it skipped), the reading of the place it stands on."""
        self.notes.append(note)
        pitch, t, _ = note
        for place in self.places:
            if place is self.active and followed is not None:
                _follow(graph, place, followed, t)
            else:
                step(graph, place, pitch, t, spq)
        best = min(self.places, key=lambda p: p.total)
        if best is self.active or best.placed < MIN_PLACED:
            return None
        margin = self.margin if best.placed < SURE_PLACED else min(self.margin, SURE_MARGIN)
        exact = best.cost <= EXACT_COST
        if self.long and exact and best.placed >= EXACT_PLACED:
            margin = min(margin, EXACT_MARGIN)
        if exact and not self.active.carry_on and best.placed == len(self.notes):
            # the follower already stands on a guess made since the break: another place
            # that explains every note nearly as written needs no wide margin to replace it
            margin = min(margin, EXACT_MARGIN)
        if best.total + margin >= self.active.total:
            return None
        if best.cost > FIT_BASE + FIT_PER_NOTE * len(self.notes):
            return None  # no place explains these notes: not a jump, a passage gone wrong
        self.active = best
        return best

    @property
    def explained(self) -> bool:
        """Some place explains every note since the break about as well as one can."""
        limit = FIT_BASE + FIT_PER_NOTE * len(self.notes)
        return any(p.cost <= limit for p in self.places)

    @property
    def done(self) -> bool:
        return len(self.notes) >= TRACK_NOTES
