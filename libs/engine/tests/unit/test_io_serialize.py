import json
from pathlib import Path

import numpy as np
import pytest
from sonata_engine import (
    PerformanceFormatError,
    ScoreFormatError,
    load_performance,
    load_score,
    performance_from_dict,
    performance_to_dict,
    score_from_dict,
    score_to_dict,
)
from sonata_engine.io import MidiStreamParser, build_performance


def vienna() -> Path:
    root = Path(__file__).resolve().parents[4].parent / "shared" / "eval" / "vienna4x22"
    if not root.is_dir():
        pytest.fail(f"evaluation data missing: expected {root}")
    return root


def test_io_score_json_round_trip_is_exact() -> None:
    score = load_score(vienna() / "musicxml" / "Chopin_op10_no3.musicxml")
    back = score_from_dict(json.loads(json.dumps(score_to_dict(score))))
    assert back.notes.dtype == score.notes.dtype
    assert back.notes.tobytes() == score.notes.tobytes()
    assert back.measures == score.measures
    assert back.tempo_marks == score.tempo_marks
    assert back.dynamics == score.dynamics
    assert back.sections == score.sections
    assert (back.title, back.composer) == (score.title, score.composer)


def test_io_performance_json_round_trip_keeps_a_held_note() -> None:
    perf = load_performance(vienna() / "midi" / "Schubert_D783_no15_p01.mid")
    back = performance_from_dict(json.loads(json.dumps(performance_to_dict(perf))))
    assert back.notes.tobytes() == perf.notes.tobytes()
    held = build_performance(MidiStreamParser().feed(bytes([0x90, 60, 80]), 0.5))
    text = json.dumps(performance_to_dict(held), allow_nan=False)
    assert np.isnan(performance_from_dict(json.loads(text)).notes["offset_s"][0])


def test_io_bad_dicts_are_format_errors() -> None:
    score = load_score(vienna() / "musicxml" / "Chopin_op10_no3.musicxml")
    d = score_to_dict(score)
    del d["notes"]["pitch"]
    with pytest.raises(ScoreFormatError, match="pitch"):
        score_from_dict(d)
    with pytest.raises(ScoreFormatError, match="format"):
        score_from_dict({"notes": {}})
    with pytest.raises(PerformanceFormatError, match="bad value"):
        performance_from_dict(
            {
                "format": 1,
                "notes": {
                    "id": ["n0"],
                    "pitch": ["high"],
                    "onset_s": [0.0],
                    "offset_s": [1.0],
                    "velocity": [64],
                    "channel": [0],
                },
            }
        )
