"""Regression on one real performance of the Vienna 4x22 corpus (Goebl 1999; CPJKU rematched
edition): the live decisions and the final alignment against the hand-checked match file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import partitura as pt
import pytest
from sonata_engine import LiveSession, load_score
from sonata_engine.types import PERF_NOTE_DTYPE, Performance

REPO = Path(__file__).resolve().parents[4]
VIENNA = REPO.parent / "shared" / "eval" / "vienna4x22"
PIECE, TAKE = "Chopin_op10_no3", "Chopin_op10_no3_p01"
LIVE_FLOOR = 0.99  # measured 0.996
FINAL_FLOOR = 0.99  # measured 0.996


def f_measure(predicted: set[tuple[str, str]], truth: set[tuple[str, str]]) -> float:
    hits = len(predicted & truth)
    return 2 * hits / (len(predicted) + len(truth)) if predicted or truth else 1.0


@pytest.fixture(scope="module")
def take() -> tuple[set[tuple[str, str]], Path, Performance]:
    match = VIENNA / "match" / f"{TAKE}.match"
    if not match.exists():
        pytest.fail(f"the Vienna 4x22 evaluation set is missing: expected {match}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        played, alignment, _ = pt.load_match(str(match), create_score=True)
    truth = {(a["score_id"], a["performance_id"]) for a in alignment if a["label"] == "match"}
    # The performed notes as the match file numbers them (the ids the ground truth uses).
    pa = played.note_array()
    notes = np.zeros(len(pa), dtype=PERF_NOTE_DTYPE)
    notes["id"], notes["pitch"], notes["velocity"] = pa["id"], pa["pitch"], pa["velocity"]
    notes["onset_s"] = pa["onset_sec"]
    notes["offset_s"] = pa["onset_sec"] + pa["duration_sec"]
    notes = notes[np.argsort(notes["onset_s"], kind="stable")]
    return truth, VIENNA / "musicxml" / f"{PIECE}.musicxml", Performance(notes)


def test_live_and_final_alignment_of_a_real_performance(
    take: tuple[set[tuple[str, str]], Path, Performance],
) -> None:
    truth, score_path, performance = take
    score = load_score(score_path)
    session = LiveSession(score)
    live: set[tuple[str, str]] = set()
    for note in performance.notes:
        out = session.note_on(
            float(note["onset_s"]), int(note["pitch"]), int(note["velocity"]), str(note["id"])
        )
        first = out[0]
        if first.kind == "correct" and first.score_id is not None:
            live.add((first.score_id, str(note["id"])))
    report = session.finish()
    final = set(report.alignment.matches)
    assert f_measure(live, truth) >= LIVE_FLOOR
    assert f_measure(final, truth) >= FINAL_FLOOR
