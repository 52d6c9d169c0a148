"""A simulated learner with exact ground truth.

From a score, a session is a list of passes, each a run of consecutive chords at its own tempo;
between passes the learner restarts the bar, jumps back or ahead some bars, or pauses. Inside a
pass: tempo drift, timing jitter, chord spread, velocity jitter, wrong notes in bursts, extra
and missed notes, one hand only. Which score note each played note stands for is known by
construction, repeated passages included.

Ground truth per session: each played note is a match, or an insertion (extra; or a wrong note,
whose score note is then also a deletion); a note skipped inside a pass is a deletion; a score
note no pass ever played is a deletion. The unplayed tail of a bar the learner restarted is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from sonata_engine.types import PERF_NOTE_DTYPE, Score, SessionOptions

from bench.groundtruth import Case
from bench.inject import HIGHEST, LOWEST, case_seed
from bench.metric import Triple

SETTLE = 5  # a session is back when this many consecutive decisions are right


_NOT_PLAYED = {"right": 1, "left": 0}  # the hand a one-hand pass leaves out, as the engine


@dataclass(frozen=True)
class Scenario:
    name: str
    tempo: tuple[float, float] = (0.85, 1.05)  # factor of the printed tempo, drawn per pass
    restarts: int = 0  # restart the current bar
    jumps_back: int = 0  # 2-8 bars back
    jumps_ahead: int = 0  # 2-8 bars ahead
    pauses: int = 0  # 3-20 s of silence mid-piece
    one_hand: Literal["", "right", "left"] = ""  # only this hand's notes are played
    tell_hand: bool = False  # the session is told (hands=one_hand): the other's are not due
    bursts: float = 0.0  # chance per chord that a burst of 3-6 wrong notes starts
    extra: float = 0.0  # chance per note of an extra note next to it
    missed: float = 0.0  # chance per note that it is left out


SCENARIOS = (
    Scenario("clean"),
    Scenario("restart a bar", restarts=6),
    Scenario("jump back", jumps_back=5),
    Scenario("jump ahead", jumps_ahead=4),
    Scenario("long pauses", pauses=5),
    Scenario("50 % tempo", tempo=(0.5, 0.5)),
    Scenario("40 % tempo", tempo=(0.4, 0.4)),
    Scenario("200 % tempo", tempo=(2.0, 2.0)),
    Scenario("tempo 40-200 % after pauses", tempo=(0.4, 2.0), pauses=4),
    Scenario("right hand only", one_hand="right"),
    Scenario("left hand only", one_hand="left"),
    Scenario("right hand only (session told)", one_hand="right", tell_hand=True),
    Scenario("wrong notes in bursts", bursts=0.04),
    Scenario(
        "learner",
        tempo=(0.5, 0.9),
        restarts=3,
        jumps_back=2,
        jumps_ahead=1,
        pauses=2,
        bursts=0.01,
        extra=0.02,
        missed=0.02,
    ),
)


@dataclass
class Jump:
    kind: str  # "restart" | "jump back" | "jump ahead" | "pause"
    perf_ids: list[str]  # the notes of the pass that follows, in time order


@dataclass
class Session:
    case: Case
    scenario: str
    jumps: list[Jump] = field(default_factory=list)
    options: SessionOptions = field(default_factory=SessionOptions)
    due: list[str] | None = None  # score notes the session should account for; None: all


def simulate(score: Score, scenario: Scenario, seed: int, name: str) -> Session:
    rng = np.random.default_rng(case_seed(seed, f"{scenario.name}/{name}"))
    notes = score.notes
    onsets, group_of = np.unique(notes["onset_q"], return_inverse=True)
    groups = [np.flatnonzero(group_of == g) for g in range(len(onsets))]
    bar_of_group = np.array([int(notes["measure_index"][g[0]]) for g in groups])
    bar_start = {b: int(np.argmax(bar_of_group == b)) for b in np.unique(bar_of_group)}
    passes = _plan(len(groups), bar_of_group, bar_start, scenario, rng)

    rows: list[tuple[str, int, float, float, int, int]] = []
    truth: set[Triple] = set()
    subs: set[tuple[str, str]] = set()
    played: set[str] = set()
    jumps: list[Jump] = []
    t = 1.0
    burst_left = 0
    for kind, first, stop, pause in passes:
        t += pause
        tempo = float(rng.uniform(*scenario.tempo))
        drift = 1.0
        pass_ids: list[str] = []
        for g in range(first, stop):
            if g > first:
                gap = float(notes["onset_s"][groups[g][0]] - notes["onset_s"][groups[g - 1][0]])
                drift = float(np.clip(drift * np.exp(rng.normal(0, 0.02)), 0.85, 1.15))
                t += gap / (tempo * drift)
            if burst_left == 0 and rng.random() < scenario.bursts:
                burst_left = int(rng.integers(3, 7))
            chord_pitches = {int(p) for p in notes["pitch"][groups[g]]}
            for i in rng.permutation(groups[g]):
                sid = str(notes["id"][i])
                if scenario.one_hand and int(notes["hand"][i]) == _NOT_PLAYED[scenario.one_hand]:
                    continue
                if rng.random() < scenario.missed:
                    truth.add(("deletion", sid, None))
                    continue
                pid = f"p{len(rows)}"
                pitch = int(notes["pitch"][i])
                onset = t + float(rng.normal(0, 0.01)) + float(rng.uniform(0, 0.025))
                if notes["is_grace"][i]:
                    onset -= float(rng.uniform(0.04, 0.1)) / tempo
                if burst_left > 0:
                    wrong = _shift(pitch, chord_pitches, rng, (-2, -1, 1, 2))
                    if wrong is not None:
                        burst_left -= 1
                        chord_pitches.add(wrong)
                        truth |= {("insertion", None, pid), ("deletion", sid, None)}
                        subs.add((sid, pid))
                        pitch = wrong
                if (sid, pid) not in subs:
                    truth.add(("match", sid, pid))
                    played.add(sid)
                length = max(float(notes["duration_s"][i]) / tempo * rng.uniform(0.6, 0.95), 0.04)
                velocity = int(np.clip(notes["velocity_mark"][i] + rng.normal(0, 10), 1, 127))
                rows.append((pid, pitch, max(onset, 0.0), max(onset, 0.0) + length, velocity, 0))
                pass_ids.append(pid)
                if rng.random() < scenario.extra:
                    extra = _shift(
                        pitch, chord_pitches, rng, tuple(range(-12, 0)) + tuple(range(1, 13))
                    )
                    if extra is not None:
                        xid = f"p{len(rows)}"
                        at = onset + float(rng.uniform(0, 0.06))
                        rows.append((xid, extra, at, at + length, velocity, 0))
                        truth.add(("insertion", None, xid))
                        pass_ids.append(xid)
        if kind != "start":
            jumps.append(Jump(kind, pass_ids))
        last_onset = max((r[2] for r in rows), default=t)
        t = max(t, last_onset) + 0.3
    hand = scenario.one_hand
    told = hand != "" and scenario.tell_hand
    due = [str(n["id"]) for n in notes if not told or int(n["hand"]) != _NOT_PLAYED[hand]]
    truth.update(("deletion", sid, None) for sid in due if sid not in played)
    perf = _release_before_restrike(np.array(rows, dtype=PERF_NOTE_DTYPE))
    for jump in jumps:
        members = set(jump.perf_ids)
        jump.perf_ids = [str(p) for p in perf["id"] if str(p) in members]
    empty = np.zeros(0, dtype=[("id", "U32")])  # no peer runs on simulated sessions
    case = Case(f"{name}/{scenario.name}", name, perf, [], truth, subs, empty)
    options = SessionOptions(hands=hand) if hand != "" and told else SessionOptions()
    return Session(case, scenario.name, jumps, options, due if told else None)


def _plan(
    n_groups: int,
    bar_of_group: npt.NDArray[np.int_],
    bar_start: dict[int, int],
    scenario: Scenario,
    rng: np.random.Generator,
) -> list[tuple[str, int, int, float]]:
    """Passes as (how it began, first chord, stop chord, pause before it in seconds)."""
    kinds = (
        ["restart"] * scenario.restarts
        + ["jump back"] * scenario.jumps_back
        + ["jump ahead"] * scenario.jumps_ahead
        + ["pause"] * scenario.pauses
    )
    rng.shuffle(kinds)
    last_bar = int(bar_of_group[-1])
    passes: list[tuple[str, int, int, float]] = []
    kind, pos, pause, frontier = "start", 0, 0.0, 0
    spacing = max(n_groups // (len(kinds) + 1), 12)
    for next_kind in kinds:
        # after a jump back the learner plays on past where they left off
        stop = min(max(pos, frontier) + int(rng.integers(spacing // 2, spacing + 1)), n_groups - 1)
        frontier = max(frontier, stop)
        if stop <= pos + 4:
            break
        passes.append((kind, pos, stop, pause))
        bar = int(bar_of_group[stop])
        if next_kind == "restart":
            target = bar_start[bar]
            if target >= stop:
                target = bar_start[max(bar - 1, 0)]
        elif next_kind == "jump back":
            target = bar_start[max(bar - int(rng.integers(2, 9)), 0)]
        elif next_kind == "jump ahead":
            ahead = min(bar + int(rng.integers(2, 9)), last_bar)
            target = bar_start.get(ahead, stop)
        else:
            target = stop
        pause = float(rng.uniform(3, 20)) if next_kind == "pause" else float(rng.uniform(0.4, 1.5))
        kind, pos = next_kind, target
    passes.append((kind, pos, n_groups, pause))
    return passes


def _shift(
    pitch: int, busy: set[int], rng: np.random.Generator, steps: tuple[int, ...]
) -> int | None:
    for step in rng.permutation(np.array(steps)):
        new = pitch + int(step)
        if LOWEST <= new <= HIGHEST and new not in busy:
            return new
    return None


def _release_before_restrike(perf: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Time order, and a key still down when struck again is released just before."""
    perf = perf[np.lexsort((perf["pitch"], perf["onset_s"]))]
    down: dict[int, int] = {}
    for k in range(len(perf)):
        pitch = int(perf["pitch"][k])
        j = down.get(pitch)
        if j is not None and perf["offset_s"][j] >= perf["onset_s"][k]:
            perf["offset_s"][j] = max(perf["onset_s"][j] + 0.005, perf["onset_s"][k] - 0.005)
        down[pitch] = k
    return perf
