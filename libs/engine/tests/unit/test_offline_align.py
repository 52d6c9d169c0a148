"""align_offline on constructed performances: every note accounted for once, with hindsight."""

from __future__ import annotations

import numpy as np
from sonata_engine import align_offline
from sonata_engine.types import (
    PERF_NOTE_DTYPE,
    SCORE_NOTE_DTYPE,
    Measure,
    Performance,
    Score,
    SessionOptions,
)

SPQ = 0.5


def make_score(rows: list[tuple[float, int, int]]) -> Score:
    """Score from (onset in quarters, pitch, hand) in 4/4 at 120 bpm."""
    notes = np.zeros(len(rows), dtype=SCORE_NOTE_DTYPE)
    for i, (q, pitch, hand) in enumerate(rows):
        notes[i] = (
            f"n{i}",
            pitch,
            q,
            1.0,
            q * SPQ,
            SPQ,
            int(q // 4) + 1,
            int(q // 4),
            1 + q % 4,
            hand,
            hand + 1,
            1,
            False,
            64,
        )
    notes = notes[np.lexsort((notes["pitch"], notes["onset_q"]))]
    bars = int(notes["onset_q"].max() // 4) + 1
    return Score(notes, [Measure(b, b + 1, 4.0 * b, 4.0 * b + 4, 4, 4) for b in range(bars)])


def perf(notes: list[tuple[float, int]]) -> Performance:
    arr = np.zeros(len(notes), dtype=PERF_NOTE_DTYPE)
    for k, (t, p) in enumerate(notes):
        arr[k] = (f"p{k}", p, t, t + 0.3, 70, 0)
    return Performance(arr)


MELODY = [60, 62, 64, 65, 67, 69, 71, 72, 74, 72, 69, 65, 64, 60, 62, 67]
# Right hand melody over a left hand of broken chords: chords, repeated notes, two hands.
ROWS = [(float(i), p, 0) for i, p in enumerate(MELODY)] + [
    (i + 0.5, p, 1) for i, p in enumerate([48, 55, 52, 55] * 4)
]


def expected_pairs(score: Score, played: list[tuple[float, int]]) -> set[tuple[str, str]]:
    by_time = {
        (round(float(r["onset_q"]) * SPQ, 6), int(r["pitch"])): str(r["id"]) for r in score.notes
    }
    return {(by_time[(round(t, 6), p)], f"p{k}") for k, (t, p) in enumerate(played)}


def test_clean_performance_with_expressive_timing_matches_everything() -> None:
    score = make_score(ROWS)
    rng = np.random.default_rng(7)
    clean = sorted((float(r["onset_q"]) * SPQ, int(r["pitch"])) for r in score.notes)
    jittered = [(t * 1.3 + float(rng.normal(0, 0.02)), p) for t, p in clean]
    result = align_offline(score, perf(jittered))
    truth = expected_pairs(score, clean)
    assert set(result.matches) == truth
    assert result.extra == []
    assert result.missed == []
    assert result.wrong_pitch == []


def test_errors_are_sorted_into_missed_extra_and_wrong_pitch() -> None:
    score = make_score(ROWS)
    clean = sorted((float(r["onset_q"]) * SPQ, int(r["pitch"])) for r in score.notes)
    played = list(clean)
    dropped = played.pop(10)  # a missed note
    k_wrong = next(k for k, (t, p) in enumerate(played) if p == 67)
    played[k_wrong] = (played[k_wrong][0], 66)  # G4 played as F#4
    played.append((3.02, 90))  # an extra note far from anything written
    played.sort()
    result = align_offline(score, perf(played))
    ids = {
        (round(float(r["onset_q"]) * SPQ, 6), int(r["pitch"])): str(r["id"]) for r in score.notes
    }
    assert result.missed == [ids[(round(dropped[0], 6), dropped[1])]]
    assert [s for s, _ in result.wrong_pitch] == [ids[(round(played[k_wrong][0], 6), 67)]]
    extra_k = next(k for k, (t, p) in enumerate(played) if p == 90)
    assert result.extra == [f"p{extra_k}"]
    every_perf = [p for _, p in result.matches] + [p for _, p in result.wrong_pitch] + result.extra
    assert sorted(every_perf) == sorted(f"p{k}" for k in range(len(played)))


def test_a_restart_is_a_second_pass_matching_the_replayed_notes_again() -> None:
    score = make_score([(float(i), p, 0) for i, p in enumerate(MELODY)])
    first = [(i * SPQ, p) for i, p in enumerate(MELODY[:12])]
    again = [(8.0 + i * SPQ, p) for i, p in enumerate(MELODY[4:])]  # from bar 2 again
    result = align_offline(score, perf(first + again))
    assert [(p.kind, p.first_measure_index, p.last_measure_index) for p in result.passes] == [
        ("start", 0, 2),
        ("restart", 1, 3),
    ]
    one, two = result.passes
    assert one.matches == [(f"n{i}", f"p{i}") for i in range(12)]
    assert sorted(two.matches) == sorted((f"n{i}", f"p{8 + i}") for i in range(4, 16))
    assert one.missed == two.missed == []
    # the flat lists are the union: bars 2-3 are matched twice, nothing is extra or missed
    assert sorted(result.matches) == sorted(one.matches + two.matches)
    assert result.extra == []
    assert result.missed == []


def test_one_hand_option_leaves_the_other_hand_out() -> None:
    score = make_score(ROWS)
    clean = sorted(
        (float(r["onset_q"]) * SPQ, int(r["pitch"])) for r in score.notes if r["hand"] == 1
    )
    result = align_offline(score, perf(clean), SessionOptions(hands="left"))
    assert len(result.matches) == len(clean)
    assert result.missed == []
    assert result.extra == []


def test_a_wrong_pitch_landing_on_a_neighbours_pitch_is_not_matched_to_it() -> None:
    # A scale in eighths over octaves in the left hand: G4 (67) played as F#4, then A4 (69)
    # played as G4, on time with the left hand. The G4 an eighth late would fit the written G4
    # at a stretch, but it sits exactly on the A4 it replaced: two wrong notes, nothing missed,
    # nothing extra.
    rows = [
        (i * 0.5, p - octave, int(octave > 0))
        for i, p in enumerate(MELODY)
        for octave in (0, 12, 24)
    ]
    score = make_score(rows)
    played = sorted((q * SPQ, p) for q, p, _ in rows)
    k4, k5 = played.index((2.0 * SPQ, 67)), played.index((2.5 * SPQ, 69))
    played[k4] = (played[k4][0], 66)
    played[k5] = (played[k5][0], 67)
    result = align_offline(score, perf(played))
    ids = {(round(float(r["onset_q"]), 6), int(r["pitch"])): str(r["id"]) for r in score.notes}
    assert sorted(result.wrong_pitch) == [(ids[(2.0, 67)], f"p{k4}"), (ids[(2.5, 69)], f"p{k5}")]
    assert result.missed == []
    assert result.extra == []
    assert len(result.matches) == len(rows) - 2
