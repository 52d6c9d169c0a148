"""Properties of a live session over generated event streams and generated scores."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sonata_engine import LiveSession
from sonata_engine.errors import InvalidEventError
from sonata_engine.types import SCORE_NOTE_DTYPE, Judgement, Measure, Score

SPQ = 0.5
settings.register_profile(
    "sonata-engine",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile("sonata-engine")


def score_from_groups(groups: list[tuple[float, list[int]]], grace_before: int = -1) -> Score:
    """A score from (duration in quarters, pitches) onset groups, 4/4 at 120 bpm."""
    rows = []
    q = 0.0
    for g, (dur, pitches) in enumerate(groups):
        if g == grace_before:
            rows.append((q, pitches[0] + 1, 0.0, True))
        rows.extend((q, p, dur, False) for p in pitches)
        q += dur
    notes = np.zeros(len(rows), dtype=SCORE_NOTE_DTYPE)
    for i, (on, p, dur, grace) in enumerate(rows):
        notes[i] = (
            f"n{i}",
            p,
            on,
            dur,
            on * SPQ,
            dur * SPQ,
            int(on // 4) + 1,
            int(on // 4),
            1 + on % 4,
            0 if p >= 60 else 1,
            1 if p >= 60 else 2,
            1,
            grace,
            64,
        )
    notes = notes[np.lexsort((notes["pitch"], notes["onset_q"]))]
    bars = int(q // 4) + 1
    return Score(notes, [Measure(b, b + 1, 4.0 * b, 4.0 * b + 4, 4, 4) for b in range(bars)])


FIXED = score_from_groups(
    [(1.0, [60, 64, 67]), (0.5, [62]), (0.5, [64]), (1.0, [65, 57]), (1.0, [67]), (2.0, [72, 48])],
    grace_before=4,
)

times = st.one_of(
    st.floats(min_value=-5.0, max_value=60.0),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0]),
)
events = st.lists(
    st.one_of(
        st.tuples(st.just("on"), times, st.integers(-3, 131), st.integers(-3, 131)),
        st.tuples(st.just("off"), times, st.integers(-3, 131)),
        st.tuples(st.just("pedal"), times, st.integers(-3, 131)),
        st.tuples(st.just("advance"), times),
    ),
    max_size=60,
)


def _invalid(event: tuple[Any, ...]) -> bool:
    t = event[1]
    if not math.isfinite(t):
        return True
    return any(not 0 <= v <= 127 for v in event[2:])


def _feed(s: LiveSession, event: tuple[Any, ...], note_id: str) -> list[Judgement]:
    kind = event[0]
    if kind == "on":
        return s.note_on(event[1], event[2], event[3], note_id)
    if kind == "off":
        return s.note_off(event[1], event[2])
    if kind == "pedal":
        s.pedal(event[1], event[2])
        return []
    return s.advance(event[1])


@PROFILE
@given(events)
def test_any_event_stream_only_raises_the_engines_own_errors(stream: list[tuple[Any, ...]]) -> None:
    s = LiveSession(FIXED)
    played: list[str] = []
    for event in stream:
        if _invalid(event):
            with pytest.raises(InvalidEventError):
                _feed(s, event, f"k{len(played)}")
            continue
        out = _feed(s, event, f"k{len(played)}")
        if event[0] == "on" and event[3] > 0:
            assert out[0].perf_id == f"k{len(played)}"
            assert out[0].kind in ("correct", "wrong_pitch", "extra")
            assert all(j.kind == "missed" for j in out[1:])
            played.append(f"k{len(played)}")
        elif event[0] == "advance":
            assert all(j.kind == "missed" for j in out)
        else:
            assert out == []
    report = s.finish()
    named = [p for _, p in report.alignment.matches] + [p for _, p in report.alignment.wrong_pitch]
    named += report.alignment.extra
    assert Counter(named) == Counter(played)


group = st.tuples(
    st.sampled_from([0.25, 0.5, 1.0, 1.5]),
    st.lists(st.integers(48, 84), min_size=1, max_size=3, unique=True),
)


@PROFILE
@given(
    st.lists(group, min_size=4, max_size=40),
    st.floats(min_value=0.4, max_value=2.0),
    st.randoms(use_true_random=False),
)
def test_never_loses_its_place_on_a_clean_performance(
    groups: list[tuple[float, list[int]]], tempo: float, rnd: Any
) -> None:
    score = score_from_groups(groups)
    s = LiveSession(score)
    notes = sorted(score.notes, key=lambda r: (float(r["onset_q"]), rnd.random()))
    kinds = []
    ids = []
    for k, row in enumerate(notes):
        # chord notes a few milliseconds apart, in any order
        t = float(row["onset_q"]) * SPQ / tempo + 0.004 * (k % 3)
        j = s.note_on(t, int(row["pitch"]), 70)[0]
        kinds.append(j.kind)
        ids.append(j.score_id)
    assert kinds == ["correct"] * len(notes)
    assert ids == [str(r["id"]) for r in notes]
    assert s.position is not None
    assert s.position.onset_q == float(notes[-1]["onset_q"])
