"""The score follower: where in the score each arriving note belongs, with flat per-note cost.

State is a pointer to the current onset group, a time anchor (the arrival of the last group the
learner reached) and a robust tempo. An arriving pitch is compared with the unplayed notes of
that pitch in a window of groups around the pointer; each candidate costs the unplayed notes it
would skip plus how far its expected time is from the arrival time. The cheapest candidate
wins when it is cheaper than calling the note extra; otherwise a nearby unplayed note one or
two semitones away makes it a wrong pitch.

Keeping place when the learner jumps: after a break in the playing (or a shorter hesitation
before a note that does not fit where the learner was), the places a learner goes to
(carrying on, restarting the bar, the bars around it) are compared note by note
(``reentry``) and the follower moves to the one that explains the notes clearly best, back
again if it was wrong. Beyond that, every note remembers what placing it cost. Once the
recent notes, from the first badly placed one, have cost enough together, they are looked up
in the whole score (``jumps.find_jump``: per-pitch group indexes and searchsorted on small
arrays, so the cost does not grow with the piece), and the follower relocates where they all
fit, and only if one place fits clearly.

Each pass over the score (a restart, a jump back, a loop wrapping round) has a number; a note
counts as played only if it was played in the current pass, so starting again costs nothing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, NamedTuple

import numpy as np

from sonata_engine.live.jumps import (
    BACK_GROUPS,
    CLEAR_MARGIN,
    LOCAL_AHEAD_GROUPS,
    OFF_BAR_COST,
    find_jump,
    find_reentry,
    place_costs,
)
from sonata_engine.live.reentry import (
    BAR_RANGE,
    PLACE_NONE,
    PLACE_RIGHT,
    PLACE_WRONG,
    SURE_MARGIN,
    SWITCH_MARGIN,
    Place,
    Tracker,
    bar_first_groups,
    places,
)
from sonata_engine.scoregraph import GRACE_SKIP, ScoreGraph
from sonata_engine.tempo import TempoTracker
from sonata_engine.types import SessionOptions

UNPLAYED, MATCHED, WRONG, MISSED = 0, 1, 2, 3

OTHER_HAND_Q = 2.0  # a note of the hand not practised, played within this many quarters
FWD_GROUPS = 16
WRAP_GROUPS = 4
#: Costs are in "skipped notes": skipping one unplayed note costs 1.
EXTRA_COST = 3.0
BACK_COST = 0.8
WRAP_COST = 0.5
WRONG_BASE = 1.0
WRONG_MARGIN = 0.5  # a wrong pitch may cost a little more than an extra note would
WRONG_SEMITONE = 0.5  # two semitones off is less likely meant than one
WRONG_AHEAD_GROUPS = 2
SLIP_MARGIN = 0.3  # a wrong pitch skipping fewer notes beats a match by this much (``_slip``)
CUR_LEFT_WEIGHT = 0.5
#: Playing one hand without saying so: leaving out the other hand's notes costs this much
#: once, not one per note; once that hand has been silent for HAND_QUIET_GROUPS groups in a
#: row, leaving it out costs HAND_QUIET_COST.
HAND_SILENT_COST = 2.5
HAND_QUIET_COST = 0.1
HAND_QUIET_GROUPS = 2
HAND_LOOK_GROUPS = 8  # the groups passed that a move is judged on
SIGMA_S = 0.08  # spread of the notes of one group (chords, asynchrony), seconds
SIGMA_S_REL = 0.15  # ... growing with the beat: slow chords are rolled slowly
SIGMA_EARLY = 0.3  # spread of a tempo ratio (log) when a note comes sooner than expected
SIGMA_LATE = 0.45  # ... and later (hesitation is common)
RATIO_EPS_S = 0.06  # seconds added to both intervals so near-zero gaps compare sanely
BEHIND_LATE_CAP = 2.5  # a note long overdue behind the pointer is more likely extra
RECLAIM_COST = 0.5  # taking back a note already answered by a wrong pitch
#: A late note (a hesitation) costs a little more than skipping one note once the tempo is
#: known; before, lateness says little (the learner's tempo may be far from the printed one).
LATE_CAP = 1.2
UNSETTLED_LATE_CAP = 0.9
EARLY_CAP = 6.0
#: A note is certainly missed once the learner is two groups and this far past it.
MISS_AFTER_S = 0.25
MISS_AFTER_Q = 0.5
DOUBT_GROUPS = 2
DOUBT_COST = 0.75
DOUBT_LATE = 1.25  # a group reached this much later than the beat implies is doubtful
RUN_MIN = 3
RUN_LOOK = 6  # a jump is looked for among the last notes, from the first one placed badly
COSTLY = 1.5  # a note placed at this cost or more was placed badly
JUMP_COST = 8.0  # the notes since then must have cost this much together to consider a jump
#: A break in the playing this long (seconds) may be a restart or a jump: the notes after it
#: are looked up in the whole score as soon as one of them fits badly where it was placed.
BREAK_S = 0.3
SEGMENT_KEEP = 12  # the last notes since the break compared as one n-gram
SEGMENT_CHECK = 16  # after this many notes since the break, only the costly-run search remains
SEGMENT_MIN = 3
SEGMENT_UNPLACED = 2  # notes after the break the follower could not place, at least
BREAK_FACTOR = 1.5  # a gap this many times what the score asks for, and BREAK_S at least
ARM_FACTOR = 1.2  # ... this many times, for comparing the places the learner may have gone to
#: ... or at least this long (seconds) when the note after it does not fit where the learner was
MISFIT_BREAK_S = 0.6
LONG_FACTOR = 2.0  # a long break: this many times what the score asks for,
LONG_BREAK_S = 0.6  # ... and this long at least
UNPLACED_COST = 2.0  # a segment note the follower left unplaced (extra, wrong pitch)
ACCEPT_COST = 3.0  # a place the segment fits worse than this is no better than a guess
FAR_SEGMENT = 6  # notes a segment needs to move the follower further than BAR_RANGE bars

Kind = Literal["correct", "wrong_pitch", "extra"]


class Cand(NamedTuple):
    cost: float
    note: int
    expected_t: float | None
    skip: float
    wrapped: bool


@dataclass(slots=True)
class Decision:
    kind: Kind
    note: int  # score note index, -1 for extra
    expected_t: float | None  # when the learner's own tempo expected that note
    spq: float
    skipped: float
    wrapped: bool = False
    cost: float = 0.0  # how badly the note fitted where it was placed
    relocated: bool = False
    other_hand: bool = False
    #: a wrong pitch for a note of the chord being played: that note's own key may still
    #: come, so the note is said to be extra until the chord is over (``certain_missed``)
    in_chord: bool = False


class _Snapshot(NamedTuple):
    """The follower's place and tempo where a break began."""

    pass_no: int
    cur: int
    anchor_g: int
    anchor_t: float
    anchor_hits: int
    prev_anchor: tuple[int, float] | None
    frontier: int
    tempo: TempoTracker


class Follower:
    """Sans-IO score follower over a :class:`ScoreGraph`."""

    def __init__(
        self,
        graph: ScoreGraph,
        options: SessionOptions,
        other: ScoreGraph | None = None,
        jump_cost: float = JUMP_COST,
        reentry: bool = True,
        track_breaks: bool = True,
    ):
        self.g = graph
        self.track_breaks = reentry and track_breaks  # compare places after each break
        self.jump_cost = jump_cost
        self.reentry = reentry  # look notes after a break up in the whole score
        self.total_cost = 0.0  # what placing every note so far cost, summed
        self.other = other  # the hand not practised: its notes are recognised, not expected
        self.wait = options.mode == "wait"
        # Practising a bar range loops: from its last bar straight back to its first is normal.
        self.loop = options.first_bar is not None or options.last_bar is not None
        self.tempo = TempoTracker(graph.spq0 * 100.0 / options.tempo_percent)
        n = len(graph.ids)
        ng = graph.n_groups
        self.state = bytearray(n)
        self.note_pass = [-1] * n
        self.g_pass = [-1] * ng
        self.g_unplayed: list[float] = list(graph.g_weight)
        self.g_unplayed_right: list[float] = list(graph.g_weight_right)
        #: both hands are expected; per hand (right, left): groups passed in a row with notes
        #: of that hand and none of them played
        self.two_hands = 0.0 < sum(graph.g_weight_right) < sum(graph.g_weight)
        self.silent = [0, 0]
        self.pass_no = 0
        self.cur = -1
        self.anchor_g = -1
        self.anchor_t = 0.0
        self.anchor_hits = 0  # notes matched into the anchor group
        self.prev_anchor: tuple[int, float] | None = None
        self.frontier = 0
        self.end_q = float(np.max(graph.notes["onset_q"] + graph.notes["duration_q"]))
        #: recent notes (pitch, time, performed index, what placing it cost)
        self.run: deque[tuple[int, float, int, float]] = deque(maxlen=RUN_LOOK)
        #: notes since the last break: (pitch, time, performed index, group placed or -1)
        self.segment: deque[tuple[int, float, int, int]] = deque(maxlen=SEGMENT_KEEP)
        self.since_break = 0
        self.last_t = -math.inf
        self.break_spq = self.tempo.spq
        self.break_at = 0  # where in the segment the last break fell
        #: per performed note: (pass, score note or -1, kind) as finally understood
        self.assign: list[tuple[int, int, int]] = []
        self.bar_first = bar_first_groups(graph)
        #: after a break: the places compared (``reentry``), the state to return to, and
        #: what changed since (note index, state, pass; group, pass, unplayed weight)
        self.tracker: Tracker | None = None
        self._snap: _Snapshot | None = None
        self._undo: list[tuple[int, int, int, int, int, float, float]] | None = None
        #: score note -> (pass, pitch played): taken by a wrong pitch while its chord was
        #: being played, its own key not come yet
        self.doubt: dict[int, tuple[int, int]] = {}

    # -- per-pass bookkeeping -------------------------------------------------------------
    def st(self, j: int) -> int:
        return self.state[j] if self.note_pass[j] == self.pass_no else UNPLAYED

    def unplayed_in(self, g: int) -> float:
        return self.g_unplayed[g] if self.g_pass[g] == self.pass_no else self.g.g_weight[g]

    def unplayed_right_in(self, g: int) -> float:
        if self.g_pass[g] == self.pass_no:
            return self.g_unplayed_right[g]
        return self.g.g_weight_right[g]

    def _doubted(self, j: int) -> bool:
        return self.doubt.get(j, (-1, 0))[0] == self.pass_no

    def _set(self, j: int, new: int) -> None:
        g = self.g.group_of[j]
        if self._undo is not None:
            self._undo.append(
                (
                    j,
                    self.state[j],
                    self.note_pass[j],
                    g,
                    self.g_pass[g],
                    self.g_unplayed[g],
                    self.g_unplayed_right[g],
                )
            )
        if self.g_pass[g] != self.pass_no:
            self.g_pass[g] = self.pass_no
            self.g_unplayed[g] = self.g.g_weight[g]
            self.g_unplayed_right[g] = self.g.g_weight_right[g]
        old = self.st(j)
        if old == UNPLAYED and new != UNPLAYED:
            w = GRACE_SKIP if self.g.grace[j] else 1.0
            self.g_unplayed[g] -= w
            if self.g.hand[j] == 0:
                self.g_unplayed_right[g] -= w
        self.state[j] = new
        self.note_pass[j] = self.pass_no

    def expected_time(self, g: int) -> float | None:
        if self.anchor_g < 0:
            return None
        return self.anchor_t + (self.g.g_eq[g] - self.g.g_eq[self.anchor_g]) * self.tempo.spq

    # -- one note ---------------------------------------------------------------------------
    def on_note(self, t: float, pitch: int, perf_index: int) -> Decision:
        # a break inside the notes being compared is part of them (a slow start, a chord
        # held): the places keep their evidence
        if (
            self.track_breaks
            and self.tracker is None
            and self.cur >= 0
            and t - self.last_t >= BREAK_S
            and self._breaks(t, ARM_FACTOR)
        ):
            self._arm(self._breaks(t, LONG_FACTOR) and t - self.last_t >= LONG_BREAK_S)
        d = self._decide(t, pitch)
        if (
            self.track_breaks
            and self.tracker is None
            and self.cur >= 0
            and t - self.last_t >= MISFIT_BREAK_S
            and d.kind != "correct"
        ):
            # a learner who cuts a long note short to go back or on leaves no gap longer
            # than the music asks for; a note after a hesitation that does not fit where
            # they were tells the same
            self._arm(False)
        if d.kind == "extra" and self.other is not None and self._is_other_hand(pitch):
            d.other_hand = True
        if d.note >= 0:
            self._commit(d, t)
            if d.in_chord:
                self.doubt[d.note] = (self.pass_no, pitch)
        failed = d.cost >= COSTLY
        self.total_cost += d.cost
        if not d.other_hand:
            # the segment's break is judged from where the note took the follower
            brk = t - self.last_t >= BREAK_S and self._breaks(t)
            self.last_t = t
            self.run.append((pitch, t, perf_index, d.cost))
            tracker = self.tracker
            moved = None if tracker is None else self._feed(tracker, d, t, pitch, perf_index)
            if tracker is not None and moved is not None:
                self._segment_add(d, t, pitch, perf_index, brk)
                self._stand_on(moved, tracker)
                d = self._placed(moved, d)
            elif tracker is not None and tracker.explained:
                self._segment_add(d, t, pitch, perf_index, brk)
            elif self._segment_note(d, t, pitch, perf_index, brk) or (failed and self._relocate()):
                # found over the whole score, where none of the places compared after the
                # break could explain the notes
                self._disarm()
                d.relocated = True
                assign = self.assign[perf_index] if perf_index < len(self.assign) else None
                if assign is not None and assign[2] == MATCHED:
                    j = assign[1]
                    d.kind, d.note, d.expected_t = "correct", j, None
            if tracker is not None and tracker.done:
                self._disarm()
        if not d.relocated:
            self._record(perf_index, d)
        return d

    def _record(self, perf_index: int, d: Decision) -> None:
        code = {"correct": MATCHED, "wrong_pitch": WRONG, "extra": UNPLAYED}[d.kind]
        entry = (self.pass_no, d.note, code)
        if perf_index < len(self.assign):
            self.assign[perf_index] = entry
        else:
            self.assign.append(entry)

    def _time_cost(self, g: int, t: float) -> tuple[float, float | None]:
        te = self.expected_time(g)
        if te is None or self.wait:
            return 0.0, te
        eq = self.g.g_eq[g]
        cost = self._interval_cost(t - self.anchor_t, eq - self.g.g_eq[self.anchor_g])
        prev = self.prev_anchor
        if (
            prev is not None
            and self.anchor_hits == 1
            and self.anchor_g < g <= self.anchor_g + DOUBT_GROUPS
        ):
            # The anchor rests on one late note, which may itself have been a stray (or
            # belong to the next group): also measure from the anchor before it.
            alt = DOUBT_COST + self._interval_cost(t - prev[1], eq - self.g.g_eq[prev[0]])
            cost = min(cost, alt)
        return cost, te

    def _interval_cost(self, actual: float, dq: float) -> float:
        """How unlikely it is that ``dq`` quarters after the anchor arrive ``actual`` s after it.

        Ahead of the anchor the error is a tempo ratio (log scale): a note 20 ms after the last
        one is not two beats on, whatever the tempo. At or behind the anchor it is plain lateness.
        """
        late_cap = LATE_CAP if self.tempo.settled else UNSETTLED_LATE_CAP
        if dq <= 0:
            z = (actual - dq * self.tempo.spq) / (SIGMA_S + SIGMA_S_REL * self.tempo.spq)
            return min(0.5 * z * z, late_cap if dq == 0 else BEHIND_LATE_CAP)
        r = math.log((max(actual, 0.0) + RATIO_EPS_S) / (dq * self.tempo.spq + RATIO_EPS_S))
        if r < 0:
            return min(0.5 * (r / SIGMA_EARLY) ** 2, EARLY_CAP)
        return min(0.5 * (r / SIGMA_LATE) ** 2, late_cap)

    def _scan(self, pitch: int, t: float, extra_base: float) -> Cand:
        """The cheapest unplayed note of ``pitch`` near the pointer, if under ``extra_base``."""
        g = self.g
        cur = self.cur
        best = Cand(extra_base, -1, None, 0.0, False)
        lo = max(0, cur - BACK_GROUPS)
        hi = min(g.n_groups - 1, cur + FWD_GROUPS)
        cands = g.candidates(pitch, lo, hi)
        skip_to = cur + 1
        # Moving on leaves the rest of the current group behind: cheap, but not free.
        skipped = CUR_LEFT_WEIGHT * self.unplayed_in(cur) if cur >= 0 else 0.0
        hands = self.two_hands
        if hands:
            # what the notes skipped cost if the learner plays one hand only
            right = CUR_LEFT_WEIGHT * self.unplayed_right_in(cur) if cur >= 0 else 0.0
            quiet = [
                HAND_QUIET_COST if n >= HAND_QUIET_GROUPS else HAND_SILENT_COST for n in self.silent
            ]
        for j in cands:
            gj = g.group_of[j]
            s = self.st(j)
            if gj < cur:
                if s == MATCHED or (s == WRONG and self._doubted(j)):
                    # a chord played with a wrong key in place of this note, and done with
                    continue
                cost = BACK_COST + 0.5 * (cur - gj - 1) + (RECLAIM_COST if s == WRONG else 0.0)
                skip = 0.0
            else:
                if s in (MATCHED, MISSED):
                    continue
                while skip_to < gj:
                    skipped += self.unplayed_in(skip_to)
                    if hands:
                        right += self.unplayed_right_in(skip_to)
                    skip_to += 1
                skip = skipped if gj > cur else 0.0
                if hands and gj > cur:
                    # the other hand left out: right-hand note, left hand silent, or so
                    alone = right + quiet[1] if g.hand[j] == 0 else skipped - right + quiet[0]
                    skip = min(skip, alone)
                cost = skip
            if cost >= best.cost:
                continue
            tc, te = self._time_cost(gj, t)
            cost += tc
            if cost < best.cost:
                best = Cand(cost, j, te, skip, False)
        if self.loop and cur >= g.n_groups - 2 and cur >= 0:
            best = self._scan_wrap(pitch, t, best)
        return best

    def _scan_wrap(self, pitch: int, t: float, best: Cand) -> Cand:
        """Candidates at the start of the piece (or loop) when the pointer is at its end."""
        g = self.g
        rest = CUR_LEFT_WEIGHT * self.unplayed_in(self.cur)
        rest += sum(self.unplayed_in(k) for k in range(self.cur + 1, g.n_groups))
        skipped = rest
        skip_to = 0
        for j in g.candidates(pitch, 0, WRAP_GROUPS):
            gj = g.group_of[j]
            while skip_to < gj:
                skipped += g.g_weight[skip_to]
                skip_to += 1
            cost = WRAP_COST + skipped
            te: float | None = None
            if self.anchor_g >= 0 and not self.wait:
                dq = (self.end_q - g.g_eq[self.anchor_g]) + (g.g_eq[gj] - g.g_q[0])
                te = self.anchor_t + dq * self.tempo.spq
                cost += self._interval_cost(t - self.anchor_t, dq)
            if cost < best.cost:
                best = Cand(cost, j, te, skipped, True)
        return best

    def _decide(self, t: float, pitch: int) -> Decision:
        spq = self.tempo.spq
        c = self._scan(pitch, t, EXTRA_COST)
        if c.note >= 0:
            c = self._grace_first(c, pitch)
            # in the flow of the playing only: after a break a leap may be a jump, and going
            # round a loop is no leap
            steady = self.tracker is None and not c.wrapped
            slip = self._slip(pitch, t, c) if c.skip > 0 and steady else None
            if slip is not None:
                return slip
            return Decision("correct", c.note, c.expected_t, spq, c.skip, c.wrapped, c.cost)
        best: Cand | None = None
        bound = EXTRA_COST + WRONG_MARGIN
        for dp in (-1, 1, -2, 2):
            extra_semitone = WRONG_SEMITONE * (abs(dp) - 1)
            w = self._scan(pitch + dp, t, bound - WRONG_BASE - extra_semitone)
            if w.note < 0 or w.wrapped:
                continue
            gw = self.g.group_of[w.note]
            if not self.cur <= gw <= self.cur + WRONG_AHEAD_GROUPS:
                continue
            cost = w.cost + WRONG_BASE + extra_semitone
            if cost < bound:
                bound, best = cost, w
        if best is not None:
            in_chord = self.g.group_of[best.note] == self.cur
            return Decision(
                "wrong_pitch",
                best.note,
                best.expected_t,
                spq,
                best.skip,
                cost=bound,
                in_chord=in_chord,
            )
        return Decision(
            "extra", -1, self.expected_time(max(self.cur, 0)), spq, 0.0, cost=EXTRA_COST
        )

    def _grace_first(self, c: Cand, pitch: int) -> Cand:
        """A main note whose own grace notes are being played, one of them on the same key:
        that key is struck for the grace note first (an ornament written as C-Db-Eb before a
        long Db). Once the learner has begun the ornament, its note takes the key."""
        g = self.g
        j = c.note
        gj = g.group_of[j]
        gp = gj - 1
        if g.grace[j] or gp < 0 or not g.g_grace[gp] or g.g_q[gp] != g.g_q[gj]:
            return c
        notes = range(g.g_first[gp], g.g_end[gp])
        if not any(self.st(k) == MATCHED for k in notes):
            return c
        for k in notes:
            if g.pitch[k] == pitch and self.st(k) == UNPLAYED:
                return Cand(c.cost, k, c.expected_t, c.skip, c.wrapped)
        return c

    def _slip(self, pitch: int, t: float, c: Cand) -> Decision | None:
        """A wrong pitch instead of a match ``c`` that leaps over written notes: when a note
        one or two semitones away is due here skipping fewer notes, and fits clearly better
        (by ``SLIP_MARGIN``), the learner more likely slipped than leapt."""
        best: Decision | None = None
        bound = c.cost - SLIP_MARGIN
        for dp in (-1, 1, -2, 2):
            extra_semitone = WRONG_SEMITONE * (abs(dp) - 1)
            w = self._scan(pitch + dp, t, bound - WRONG_BASE - extra_semitone)
            if w.note < 0 or w.wrapped or w.skip >= c.skip:
                continue
            if not self.cur <= self.g.group_of[w.note] <= self.cur + WRONG_AHEAD_GROUPS:
                continue
            cost = w.cost + WRONG_BASE + extra_semitone
            if cost < bound:
                bound = cost
                best = Decision(
                    "wrong_pitch", w.note, w.expected_t, self.tempo.spq, w.skip, cost=cost
                )
        return best

    def _is_other_hand(self, pitch: int) -> bool:
        other = self.other
        if other is None or self.cur < 0:
            return False
        q = self.g.g_q[self.cur]
        groups = other.by_pitch_groups.get(pitch)
        if not groups:
            return False
        return any(
            abs(other.g_q[other.group_of[k]] - q) <= OTHER_HAND_Q for k in other.by_pitch[pitch]
        )

    def _commit(self, d: Decision, t: float) -> None:
        g = self.g
        j = d.note
        gj = g.group_of[j]
        if d.wrapped:  # round from the loop's end to its start: a new pass
            self._new_pass(0)
        self._set(j, MATCHED if d.kind == "correct" else WRONG)
        self.doubt.pop(j, None)
        if gj == self.anchor_g:
            self.anchor_hits += 1
        if gj > self.cur and self.two_hands and not d.wrapped:
            self._hands_passed(self.cur, gj)
        if gj > self.cur or d.wrapped:
            if not g.g_grace[gj]:
                if self.anchor_g >= 0 and d.kind == "correct" and not d.wrapped:
                    self.tempo.observe(t - self.anchor_t, g.g_eq[gj] - g.g_eq[self.anchor_g])
                self.prev_anchor = None
                if self.anchor_g >= 0 and not d.wrapped:
                    due = (g.g_eq[gj] - g.g_eq[self.anchor_g]) * self.tempo.spq
                    if t - self.anchor_t > DOUBT_LATE * due:
                        self.prev_anchor = (self.anchor_g, self.anchor_t)
                self.anchor_g = gj
                self.anchor_t = t
                self.anchor_hits = 1
            self.cur = gj

    def _hands_passed(self, old: int, new: int) -> None:
        """The learner moved on from group ``old`` to ``new``: which hands they left silent."""
        g = self.g
        for k in range(max(old, new - HAND_LOOK_GROUPS, 0), new):
            if g.g_grace[k]:
                continue
            right_w = g.g_weight_right[k]
            left_w = g.g_weight[k] - right_w
            right_left = self.unplayed_right_in(k)
            left_left = self.unplayed_in(k) - right_left
            if right_w > 0:
                self.silent[0] = self.silent[0] + 1 if right_left >= right_w else 0
            if left_w > 0:
                self.silent[1] = self.silent[1] + 1 if left_left >= left_w else 0

    def _new_pass(self, start_group: int) -> None:
        self.pass_no += 1
        self.frontier = start_group

    # -- missed notes ---------------------------------------------------------------------
    def certain_missed(self, t: float) -> list[tuple[int, int | None]]:
        """Score notes that became certainly missed by time ``t`` (each reported once), each
        with the pitch played in its place while its chord was being played, if any."""
        out: list[tuple[int, int | None]] = []
        g = self.g
        while self.frontier <= self.cur - 2:
            f = self.frontier
            if g.g_eq[self.cur] - g.g_eq[f] < MISS_AFTER_Q:
                break
            if not self.wait:
                te = self.expected_time(f)
                if te is not None and t - te < MISS_AFTER_S:
                    break
            for j in range(g.g_first[f], g.g_end[f]):
                s = self.st(j)
                if s == UNPLAYED:
                    self._set(j, MISSED)
                    out.append((j, None))
                elif s == WRONG and self._doubted(j):
                    out.append((j, self.doubt.pop(j)[1]))
            self.frontier += 1
        return out

    # -- jumps ----------------------------------------------------------------------------
    def _segment_add(self, d: Decision, t: float, pitch: int, perf_index: int, brk: bool) -> int:
        """Keep the notes since the last break; the group the note was placed in, or -1."""
        if brk:
            if all(x[3] >= 0 for x in self.segment):
                self.segment.clear()
                self.since_break = 0
            self.break_at = len(self.segment)
            self.break_spq = self.tempo.spq
        self.since_break += 1
        placed = self.g.group_of[d.note] if d.kind == "correct" and d.note >= 0 else -1
        if len(self.segment) == SEGMENT_KEEP:
            self.break_at = max(self.break_at - 1, 0)
        self.segment.append((pitch, t, perf_index, placed))
        return placed

    def _segment_note(self, d: Decision, t: float, pitch: int, perf_index: int, brk: bool) -> bool:
        """Track the notes since the last break; relocate when they fit clearly better
        somewhere else than where the follower placed them."""
        placed = self._segment_add(d, t, pitch, perf_index, brk)
        if not self.reentry or self.since_break > SEGMENT_CHECK or len(self.segment) < SEGMENT_MIN:
            return False
        if d.cost < COSTLY and placed >= 0:
            return False
        whole = list(self.segment)
        # Since the last break, and (when the notes before it were already in trouble) since
        # the first of them: a jump may have followed the break, or come before it.
        for seg in (whole, whole[self.break_at :]) if self.break_at > 0 else (whole,):
            if len(seg) >= SEGMENT_MIN and self._try_segment(seg):
                self.segment.clear()
                self.break_at = 0
                return True
        return False

    def _breaks(self, t: float, factor: float = BREAK_FACTOR) -> bool:
        """The gap before ``t`` is longer than the music there asks for: a break."""
        cur = self.cur
        if cur < 0 or cur + 1 >= self.g.n_groups:
            return True
        due = (self.g.g_eq[cur + 1] - self.g.g_eq[cur]) * self.tempo.spq
        return t - self.last_t > factor * due

    def _try_segment(self, seg: list[tuple[int, float, int, int]]) -> bool:
        pitches = [x[0] for x in seg]
        # One stray note (an ornament, a slip) is the follower's job, not a jump.
        if len(set(pitches)) < 3 or sum(x[3] < 0 for x in seg) < SEGMENT_UNPLACED:
            return False
        times = [x[1] for x in seg]
        fit = find_reentry(self.g, pitches, times, self.break_spq, self.cur)
        if fit is None:
            return False
        groups, cost, runner = fit
        if cost > ACCEPT_COST or runner - cost < CLEAR_MARGIN:
            return False
        if [x[3] for x in seg] == groups or cost + CLEAR_MARGIN > self._local_cost(seg):
            return False
        if self.cur <= groups[0] <= self.cur + LOCAL_AHEAD_GROUPS:
            return False  # just ahead: the follower finds its way there itself
        mi = self.g.g_measure_arr
        far = abs(int(mi[groups[0]]) - int(mi[max(self.cur, 0)])) > BAR_RANGE
        if far and len(seg) < FAR_SEGMENT:
            return False  # a chord or two fit many places: far away, wait for more notes
        self._apply_fit([(x[0], x[1], x[2]) for x in seg], groups)
        return True

    def _local_cost(self, seg: list[tuple[int, float, int, int]]) -> float:
        """What the follower's own placement of the segment costs, in find_reentry's terms
        (with no bar-start prior: it did not choose where the learner began)."""
        kept = [(s[1], s[3]) for s in seg if s[3] >= 0]
        unplaced = UNPLACED_COST * (len(seg) - len(kept))
        groups = [g for _, g in kept]
        if len(kept) < 2 or any(b < a for a, b in pairwise(groups)):
            return unplaced + UNPLACED_COST * len(kept)
        chain = np.asarray(groups, dtype=np.int64)[:, None]
        times = np.asarray([x for x, _ in kept], dtype=np.float64)
        cost = float(place_costs(self.g, chain, times, self.break_spq)[0])
        if not self.g.g_bar_start_arr[groups[0]]:
            cost -= OFF_BAR_COST
        return cost + unplaced

    # -- re-entry after a break -----------------------------------------------------------
    def _arm(self, long: bool) -> None:
        """A break (``long``: a long one, where a learner may well start again): from here on,
        compare where the learner may have gone on."""
        cur = self.cur
        taken = (
            [j for j in range(self.g.g_first[cur], self.g.g_end[cur]) if self.st(j) != UNPLAYED]
            if cur >= 0
            else []
        )
        behind = [
            j
            for j in range(self.g.g_first[max(cur - BACK_GROUPS, 0)], self.g.g_first[cur])
            if self.st(j) == UNPLAYED
        ]
        found = places(self.g, cur, taken, behind, self.bar_first)
        self.tracker = Tracker(found, found[0], SURE_MARGIN if long else SWITCH_MARGIN, long)
        self._undo = []
        self._snap = _Snapshot(
            self.pass_no,
            cur,
            self.anchor_g,
            self.anchor_t,
            self.anchor_hits,
            self.prev_anchor,
            self.frontier,
            self.tempo.copy(),
        )

    def _feed(
        self, tracker: Tracker, d: Decision, t: float, pitch: int, perf_index: int
    ) -> Place | None:
        """Compare the places with one more note; the one to move to, if any."""
        assert self._snap is not None
        kind = {"correct": PLACE_RIGHT, "wrong_pitch": PLACE_WRONG, "extra": PLACE_NONE}[d.kind]
        return tracker.feed(
            self.g,
            (pitch, t, perf_index),
            self._snap.tempo.spq,
            (d.note, kind, d.skipped) if tracker.active.carry_on else None,
        )

    def _disarm(self) -> None:
        self.tracker = None
        self._snap = None
        self._undo = None

    def _stand_on(self, place: Place, tracker: Tracker) -> None:
        """Undo what the follower did since the break and place those notes as ``place``
        reads them, in a new pass unless it carries on where the learner was."""
        snap = self._snap
        undo = self._undo
        assert snap is not None
        assert undo is not None
        for j, state, note_pass, g, g_pass, g_unplayed, g_right in reversed(undo):
            self.state[j] = state
            self.note_pass[j] = note_pass
            self.g_pass[g] = g_pass
            self.g_unplayed[g] = g_unplayed
            self.g_unplayed_right[g] = g_right
        undo.clear()
        self.pass_no = snap.pass_no
        self.cur, self.anchor_g, self.anchor_t = snap.cur, snap.anchor_g, snap.anchor_t
        self.anchor_hits, self.prev_anchor = snap.anchor_hits, snap.prev_anchor
        self.frontier = snap.frontier
        self.tempo = snap.tempo.copy()
        if not place.carry_on:
            self._new_pass(place.start)
        first_t: dict[int, float] = {}
        hits: dict[int, int] = {}
        for (_, t, perf_index), (j, kind) in zip(tracker.notes, place.notes, strict=True):
            if j >= 0:
                self._set(j, MATCHED if kind == PLACE_RIGHT else WRONG)
                entry = (self.pass_no, j, MATCHED if kind == PLACE_RIGHT else WRONG)
                g = self.g.group_of[j]
                first_t.setdefault(g, t)
                hits[g] = hits.get(g, 0) + 1
            else:
                entry = (self.pass_no, -1, UNPLAYED)
            if perf_index < len(self.assign):
                self.assign[perf_index] = entry
            else:
                self.assign.append(entry)
        if first_t:
            last = max(first_t)
            start = min(first_t)
            self.cur = last
            self.anchor_g, self.anchor_t, self.anchor_hits = last, first_t[last], hits[last]
            self.prev_anchor = None
            if last > start:
                self.tempo.observe(
                    first_t[last] - first_t[start], self.g.g_eq[last] - self.g.g_eq[start]
                )
        self.run.clear()
        self.segment.clear()
        self.break_at = 0

    def _placed(self, place: Place, d: Decision) -> Decision:
        """The decision for the note that made the follower move to ``place``."""
        j, kind = place.notes[-1]
        spq = self.tempo.spq
        if j < 0:
            return Decision("extra", -1, None, spq, 0.0, cost=d.cost, relocated=True)
        label: Kind = "correct" if kind == PLACE_RIGHT else "wrong_pitch"
        return Decision(label, j, None, spq, 0.0, cost=d.cost, relocated=True)

    def _relocate(self) -> bool:
        recent = list(self.run)
        first = next(k for k, r in enumerate(recent) if r[3] >= COSTLY)
        run = recent[first:]
        if sum(r[3] for r in run) < self.jump_cost:
            return False
        if len(run) < RUN_MIN:
            return False
        pitches = [p for p, _, _, _ in run]
        distinct = len(set(pitches))
        if distinct < 2 or (distinct < 3 and len(run) < 5):
            return False
        fit = find_jump(self.g, pitches, self.cur)
        if fit is None:
            return False
        self._apply_fit([(r[0], r[1], r[2]) for r in run], fit)
        return True

    def _apply_fit(self, run: list[tuple[int, float, int]], groups: list[int]) -> None:
        """Place ``run`` (pitch, time, performed index) at ``groups`` and follow on from there."""
        start = groups[0]
        if groups[-1] < self.cur:
            self._new_pass(start)
        elif start > self.cur + LOCAL_AHEAD_GROUPS:
            # A jump ahead: the bars skipped were not played, rather than missed one by one
            # (the report says so at the end); no notice for each of their notes now.
            self.frontier = max(self.frontier, start)
        for (p, _, perf_index), gk in zip(run, groups, strict=True):
            j = self._unplayed_in_group(p, gk)
            if j >= 0:
                self._set(j, MATCHED)
                entry = (self.pass_no, j, MATCHED)
            else:
                entry = (self.pass_no, -1, UNPLAYED)
            if perf_index < len(self.assign):
                self.assign[perf_index] = entry
            else:
                self.assign.append(entry)
        last = groups[-1]
        first_t = run[0][1]
        self.cur = last
        self.prev_anchor = None
        self.anchor_hits = 1
        self.anchor_g = last
        self.anchor_t = run[-1][1]
        if last > groups[0]:
            dq = self.g.g_eq[last] - self.g.g_eq[groups[0]]
            self.tempo.observe(run[-1][1] - first_t, dq)
        self.run.clear()

    def _unplayed_in_group(self, pitch: int, g: int) -> int:
        for j in range(self.g.g_first[g], self.g.g_end[g]):
            if self.g.pitch[j] == pitch and self.st(j) != MATCHED:
                return j
        return -1
