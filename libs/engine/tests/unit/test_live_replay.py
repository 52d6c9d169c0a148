"""Replayed passages on a real piece: a learner restarts a bar, jumps back, jumps ahead.

Each attempt is a pass of the final alignment; the report scores each note by its last playing
and lists the attempts; the live session is back on the right note within three notes.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
from sonata_engine import LiveSession, build_report, load_score
from sonata_engine.types import (
    PERF_NOTE_DTYPE,
    AlignmentResult,
    Judgement,
    Performance,
    Score,
)

PIECE = "Chopin_op38"


@cache
def piece() -> Score:
    root = Path(__file__).resolve().parents[4]
    path = root.parent / "shared" / "eval" / "vienna4x22" / "musicxml" / f"{PIECE}.musicxml"
    if not path.is_file():
        pytest.fail(f"evaluation data missing: expected {path}")
    return load_score(path)


def chords(score: Score, first_bar: int, stop_bar: int) -> list[list[tuple[str, int]]]:
    """The (id, pitch) chords of bars ``first_bar`` up to (not including) ``stop_bar``."""
    notes = score.notes[~score.notes["is_grace"]]
    mi = notes["measure_index"]
    part = notes[(mi >= first_bar - 1) & (mi < stop_bar - 1)]
    out: list[list[tuple[str, int]]] = []
    for q in np.unique(part["onset_q"]):
        rows = part[part["onset_q"] == q]
        out.append([(str(r["id"]), int(r["pitch"])) for r in rows])
    return out


def play(
    session: LiveSession, passes: list[tuple[int, int]], spq: float = 0.4
) -> tuple[list[list[Judgement]], list[list[str]]]:
    """Play each (first bar, stop bar) pass with a pause before it; per pass, the first
    judgement of every note and the score ids played."""
    score = session.score
    t = 0.0
    said: list[list[Judgement]] = []
    truth: list[list[str]] = []
    for first, stop in passes:
        t += 1.2
        got: list[Judgement] = []
        ids: list[str] = []
        q_prev: float | None = None
        for chord in chords(score, first, stop):
            q = float(score.notes["onset_q"][score.notes["id"] == chord[0][0]][0])
            if q_prev is not None:
                t += (q - q_prev) * spq
            q_prev = q
            for k, (sid, pitch) in enumerate(chord):
                got.append(session.note_on(t + 0.01 * k, pitch, 70)[0])
                ids.append(sid)
        for _, pitch in chord:
            session.note_off(t + 0.3, pitch)
        said.append(got)
        truth.append(ids)
    return said, truth


def music(score: Score) -> dict[str, tuple[object, ...]]:
    """Per score note: its pitch and the pitch sets of its chord and the three after it.
    Notes with equal keys cannot be told apart by ear (the piece's opening figure recurs)."""
    notes = score.notes
    onsets, group_of = np.unique(notes["onset_q"], return_inverse=True)
    sets = [frozenset(notes["pitch"][group_of == g].tolist()) for g in range(len(onsets))]
    return {
        str(n["id"]): (int(n["pitch"]), *sets[int(group_of[k]) : int(group_of[k]) + 4])
        for k, n in enumerate(notes)
    }


def settled_after(said: list[Judgement], truth: list[str]) -> int:
    """Notes judged wrongly before five decisions in a row name the right music."""
    key = music(piece())
    ok = [
        j.kind == "correct" and j.score_id is not None and key[j.score_id] == key[sid]
        for j, sid in zip(said, truth, strict=True)
    ]
    return next((k for k in range(len(ok)) if all(ok[k : k + 5])), len(ok))


def test_a_restart_and_a_jump_back_finish_with_one_pass_each() -> None:
    session = LiveSession(piece())
    _, truth = play(session, [(1, 9), (8, 14), (10, 16)])
    report = session.finish()
    passes = report.alignment.passes
    assert [p.kind for p in passes] == ["start", "restart", "jump back"]
    assert [(p.first_measure_index + 1, p.last_measure_index + 1) for p in passes] == [
        (1, 8),
        (8, 13),
        (10, 15),
    ]
    for p, ids in zip(passes, truth, strict=True):
        assert sorted(s for s, _ in p.matches) == sorted(ids)
        assert p.missed == []
    # Scored once per score note, by the last playing; the earlier ones are attempts.
    scored = report.notes[report.notes["in_scope"] & (report.notes["kind"] != "extra")]
    played = scored[scored["kind"] == "correct"]
    assert len(set(played["score_id"].tolist())) == len(played) == len(set().union(*truth))
    replayed = report.notes[report.notes["replayed"]]
    assert len(replayed) == len(truth[0]) + len(truth[1]) + len(truth[2]) - len(played)
    assert not replayed["in_scope"].any()
    assert report.summary["attempts"] == 3
    assert report.summary["restarts"] == 1
    assert report.summary["jumps_back"] == 1
    as_dict = report.to_dict()
    assert [a["kind"] for a in as_dict["attempts"]] == ["start", "restart", "jump back"]
    assert len(as_dict["alignment"]["passes"]) == 3


@pytest.mark.parametrize(
    ("stop", "back_to"), [(12, 5), (20, 12), (30, 22), (24, 19)], ids=lambda v: f"bar{v}"
)
def test_jump_back_after_a_pause_is_followed_within_two_chords(stop: int, back_to: int) -> None:
    # The opening figure of the ballade recurs for pages: the first chord after a jump fits
    # dozens of places, the second one settles it.
    session = LiveSession(piece())
    said, truth = play(session, [(1, stop), (back_to, back_to + 6)])
    assert settled_after(said[1], truth[1]) <= 7, [j.reason for j in said[1][:8]]


def test_a_note_named_twice_without_passes_is_scored_by_its_later_playing() -> None:
    score = piece()
    first = score.notes[0]
    perf = np.zeros(2, dtype=PERF_NOTE_DTYPE)
    perf["id"] = ["a", "b"]
    perf["pitch"] = int(first["pitch"])
    perf["onset_s"] = [1.0, 3.0]
    perf["offset_s"] = [1.5, 3.5]
    perf["velocity"] = 64
    sid = str(first["id"])
    alignment = AlignmentResult(
        matches=[(sid, "b"), (sid, "a")], wrong_pitch=[], extra=[], missed=[]
    )
    report = build_report(score, Performance(perf), alignment)
    rows = report.notes[report.notes["score_id"] == sid]
    assert sorted(zip(rows["perf_id"].tolist(), rows["replayed"].tolist(), strict=True)) == [
        ("a", True),
        ("b", False),
    ]
    assert report.summary["correct"] == 1
