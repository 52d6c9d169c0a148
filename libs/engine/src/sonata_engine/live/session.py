"""``LiveSession``: feed it timestamped note events, get a judgement per note at once.

Input rules, so that a device's stream never crashes a session:
- times must be finite numbers; a time earlier than the last one seen is taken as the last one
  (devices and browsers reorder or duplicate timestamps), so the clock never runs backwards;
- pitch and velocity must be 0-127 (``InvalidEventError`` otherwise); a note-on with velocity 0
  is a note-off, as in MIDI; a note-off with no sounding note of that pitch is ignored;
- a note outside the score's range is simply an extra note.

Practising one hand: the other hand's notes are not expected, and if the learner plays them
they are judged ``extra`` with a reason naming the hand, never counted as matched.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from sonata_engine.errors import InvalidEventError, SessionStateError
from sonata_engine.live.follower import Decision, Follower
from sonata_engine.scoregraph import ScoreGraph, pitch_name
from sonata_engine.types import (
    PERF_NOTE_DTYPE,
    Judgement,
    JudgementKind,
    PedalEvent,
    Performance,
    Position,
    Score,
    SessionOptions,
    TimingLabel,
)

if TYPE_CHECKING:
    from sonata_engine.report import Report

#: Timing tolerance at strictness 0 and 1, in quarter notes and (floor) in seconds.
TOL_Q = (0.25, 0.06)
TOL_S = (0.08, 0.02)
VELOCITY_TOLERANCE = 20  # MIDI velocity steps before a note is called too loud or too soft
DEFAULT_OPTIONS = SessionOptions()


def _other_hand(score: Score, options: SessionOptions) -> ScoreGraph | None:
    if options.hands == "both":
        return None
    flipped = SessionOptions(
        hands="left" if options.hands == "right" else "right",
        first_bar=options.first_bar,
        last_bar=options.last_bar,
        tempo_percent=options.tempo_percent,
        mode=options.mode,
        strictness=options.strictness,
    )
    try:
        return ScoreGraph.build(score, flipped)
    except SessionStateError:
        return None


class LiveSession:
    """One learner playing one piece: sans-IO, every event carries its own time in seconds."""

    def __init__(self, score: Score, options: SessionOptions = DEFAULT_OPTIONS) -> None:
        self.score = score
        self.options = options
        self.graph = ScoreGraph.build(score, options)
        self._follower = Follower(self.graph, options, _other_hand(score, options))
        self._last_t = -math.inf
        self._ids: list[str] = []
        self._pitch: list[int] = []
        self._onset: list[float] = []
        self._offset: list[float] = []
        self._velocity: list[int] = []
        self._sounding: dict[int, list[int]] = {}
        self._pedal: list[PedalEvent] = []
        #: what each judgement said, as (kind, performed note, score note) for the report: plain
        #: tuples of strings, which the garbage collector stops tracking, so that a long
        #: session does not make every full collection (a pause for every session) longer
        self._said: list[tuple[JudgementKind, str | None, str | None]] = []
        self._recent_velocity = 64.0
        self._finished = False
        self._tol_q = TOL_Q[0] + (TOL_Q[1] - TOL_Q[0]) * options.strictness
        self._tol_s = TOL_S[0] + (TOL_S[1] - TOL_S[0]) * options.strictness

    # -- properties -------------------------------------------------------------------------
    @property
    def position(self) -> Position | None:
        """Where the learner is: the onset group last reached (None before the first note)."""
        cur = self._follower.cur
        return self.graph.position_of_group(cur) if cur >= 0 else None

    @property
    def tempo_bpm(self) -> float:
        """The learner's current tempo, quarter notes per minute."""
        return self._follower.tempo.bpm

    # -- events -----------------------------------------------------------------------------
    def note_on(
        self, time_s: float, pitch: int, velocity: int, note_id: str | None = None
    ) -> list[Judgement]:
        t = self._time(time_s)
        _check_7bit("pitch", pitch)
        _check_7bit("velocity", velocity)
        pitch, velocity = int(pitch), int(velocity)
        if velocity == 0:
            return self.note_off(t, pitch)
        k = len(self._ids)
        pid = note_id if note_id is not None else f"p{k}"
        self._ids.append(pid)
        self._pitch.append(pitch)
        self._onset.append(t)
        self._offset.append(math.nan)
        self._velocity.append(velocity)
        self._sounding.setdefault(pitch, []).append(k)
        d = self._follower.on_note(t, pitch, k)
        out = [self._judge(d, t, pitch, velocity, pid)]
        self._recent_velocity += 0.25 * (velocity - self._recent_velocity)
        out.extend(self._missed(t))
        self._keep(out)
        return out

    def note_off(self, time_s: float, pitch: int) -> list[Judgement]:
        t = self._time(time_s)
        _check_7bit("pitch", pitch)
        stack = self._sounding.get(pitch)
        if stack:
            self._offset[stack.pop(0)] = t
        return []

    def pedal(self, time_s: float, value: int) -> None:
        t = self._time(time_s)
        _check_7bit("pedal value", value)
        self._pedal.append(PedalEvent(t, value))

    def advance(self, time_s: float) -> list[Judgement]:
        t = self._time(time_s)
        out = self._missed(t)
        self._keep(out)
        return out

    def performance(self) -> Performance:
        """What was played so far, in the engine's note shape (keys still down have NaN)."""
        notes = np.zeros(len(self._ids), dtype=PERF_NOTE_DTYPE)
        notes["id"] = self._ids
        notes["pitch"] = self._pitch
        notes["onset_s"] = self._onset
        notes["offset_s"] = self._offset
        notes["velocity"] = self._velocity
        return Performance(notes=notes, pedal=list(self._pedal))

    def finish(self) -> Report:
        """Re-align the whole performance offline and build the final report."""
        from sonata_engine.offline import align_offline
        from sonata_engine.report import build_report

        self._ensure_open()
        self._finished = True
        perf = self.performance()
        # Arrival order is onset order (times never run backwards here), so the live follower
        # has seen exactly the notes the aligner sorts.
        alignment = align_offline(self.score, perf, self.options, live=self._follower)
        live = [Judgement(kind, pid, sid, None, None, 0.0) for kind, pid, sid in self._said]
        return build_report(self.score, perf, alignment, self.options, live)

    # -- helpers ----------------------------------------------------------------------------
    def _keep(self, out: list[Judgement]) -> None:
        self._said.extend((j.kind, j.perf_id, j.score_id) for j in out)

    def _time(self, time_s: float) -> float:
        self._ensure_open()
        if isinstance(time_s, bool) or not isinstance(time_s, (int, float)):
            raise InvalidEventError(f"time must be a number of seconds, got {time_s!r}")
        t = float(time_s)
        if not math.isfinite(t):
            raise InvalidEventError(f"time must be finite, got {t}")
        if t < self._last_t:
            t = self._last_t
        self._last_t = t
        return t

    def _ensure_open(self) -> None:
        if self._finished:
            raise SessionStateError("the session is finished: start a new one to play again")

    def _missed(self, t: float) -> list[Judgement]:
        out: list[Judgement] = []
        for j, played in self._follower.certain_missed(t):
            name = pitch_name(self.graph.pitch[j])
            pos = self._note_position(j)
            why = "the music moved on without it"
            if played is not None:
                why = f"its chord was played with {pitch_name(played)} instead"
            out.append(
                Judgement(
                    kind="missed",
                    perf_id=None,
                    score_id=self.graph.ids[j],
                    pitch=None,
                    expected_pitch=self.graph.pitch[j],
                    time_s=t,
                    expected_velocity=self.graph.velocity_mark[j],
                    position=pos,
                    tempo_bpm=self.tempo_bpm,
                    hand=self.graph.hand[j],
                    reason=f"missed {name} at bar {pos.measure} beat {pos.beat:g}: {why}",
                )
            )
        return out

    def _note_position(self, j: int) -> Position:
        g = self.graph
        return Position(g.measure[j], g.beat[j], g.onset_q[j])

    def _judge(self, d: Decision, t: float, pitch: int, velocity: int, pid: str) -> Judgement:
        bpm = 60.0 / d.spq
        name = pitch_name(pitch)
        if d.note < 0 or d.in_chord:
            where = self.position
            if d.other_hand:
                hand = "left hand" if self.options.hands == "right" else "right hand"
                why = f"{name} belongs to the {hand}, which is not being practised"
            elif d.in_chord:
                meant = self.graph.note_name(d.note)
                why = (
                    f"extra {name} in the chord, unless its {meant} does not come: "
                    "then it was played instead of it"
                )
            else:
                at = f" near bar {where.measure} beat {where.beat:g}" if where else ""
                why = f"extra {name}: no unplayed {name} expected{at}"
            return Judgement(
                kind="extra",
                perf_id=pid,
                score_id=None,
                pitch=pitch,
                expected_pitch=None,
                time_s=t,
                velocity=velocity,
                position=where,
                tempo_bpm=bpm,
                reason=why,
            )
        j = d.note
        g = self.graph
        pos = self._note_position(j)
        expected_v = g.velocity_mark[j]
        timing_ms: float | None = None
        timing_beats: float | None = None
        label: TimingLabel = "not_judged"
        at = f"bar {pos.measure} beat {pos.beat:g}"
        if d.expected_t is not None and self.options.mode != "wait" and not g.grace[j]:
            dev = t - d.expected_t
            timing_ms = 1000.0 * dev
            timing_beats = dev / d.spq
            tol = max(self._tol_s, self._tol_q * d.spq)
            label = "late" if dev > tol else "early" if dev < -tol else "on_time"
        if d.kind == "correct":
            head = f"matched {name} at {at}"
            if d.relocated:
                head += " (picked up the new place after a jump)"
        else:
            head = f"wrong pitch: played {name} where {g.note_name(j)} is written at {at}"
        tail = ""
        if timing_ms is not None:
            if label == "on_time":
                tail = f"; on time ({timing_ms:+.0f} ms) at {bpm:.0f} bpm"
            else:
                tail = f"; {abs(timing_ms):.0f} ms {label} at {bpm:.0f} bpm"
        loud = velocity - expected_v
        if abs(loud) > VELOCITY_TOLERANCE:
            tail += (
                f"; {'louder' if loud > 0 else 'softer'} than marked ({velocity} vs {expected_v})"
            )
        elif abs(velocity - self._recent_velocity) > 2 * VELOCITY_TOLERANCE:
            tail += "; stands out from the neighbouring notes"
        return Judgement(
            kind=d.kind,
            perf_id=pid,
            score_id=g.ids[j],
            pitch=pitch,
            expected_pitch=g.pitch[j],
            time_s=t,
            timing_ms=timing_ms,
            timing_beats=timing_beats,
            timing=label,
            velocity=velocity,
            expected_velocity=expected_v,
            position=pos,
            tempo_bpm=bpm,
            hand=g.hand[j],
            reason=head + tail,
        )


def _check_7bit(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidEventError(f"{what} must be an integer 0-127, got {value!r}")
    if not 0 <= int(value) <= 127:
        raise InvalidEventError(f"{what} must be 0-127, got {value}")
