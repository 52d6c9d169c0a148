"""Injected errors keep an exact ground truth, at a fixed seed."""

import numpy as np
import pytest
from sonata_engine.types import PERF_NOTE_DTYPE

from bench.engine_run import NOTE_OFF, NOTE_ON, PEDAL, events
from bench.groundtruth import Case
from bench.inject import inject
from bench.metric import Triple


def _case(n: int = 40, name: str = "piece_p01") -> Case:
    """A scale in quarter notes at 0.5 s, every note matched to score note s<k>."""
    perf = np.zeros(n, dtype=PERF_NOTE_DTYPE)
    perf["id"] = [f"n{k}" for k in range(n)]
    perf["pitch"] = [48 + (k % 24) for k in range(n)]
    perf["onset_s"] = np.arange(n) * 0.5
    perf["offset_s"] = perf["onset_s"] + 0.4
    perf["velocity"] = 64
    truth: set[Triple] = {("match", f"s{k}", f"n{k}") for k in range(n)}
    return Case(name, "piece", perf, [], truth, set(), np.zeros(0, dtype=[("id", "U32")]))


def _check_consistent(case: Case, score_ids: set[str]) -> None:
    """Every performed note appears once (match or insertion), every score note once."""
    perf_ids = [str(p) for p in case.perf["id"]]
    assert len(set(perf_ids)) == len(perf_ids)
    by_perf = [str(pid) for label, _, pid in case.truth if label != "deletion"]
    assert sorted(by_perf) == sorted(perf_ids)
    by_score = [str(sid) for label, sid, _ in case.truth if label != "insertion"]
    assert sorted(by_score) == sorted(score_ids)


def test_each_kind_of_error_is_injected_at_its_rate() -> None:
    base = _case()
    out = inject(base, 0.25, seed=0)
    labels = [label for label, _, _ in out.truth]
    assert labels.count("match") == 40 - 10 - 10  # 10 dropped, 10 shifted
    assert labels.count("deletion") == 20
    assert labels.count("insertion") == 10 + 10  # 10 wrong notes, 10 extra notes
    assert len(out.substitutions) == 10
    assert len(out.perf) == 40 - 10 + 10
    _check_consistent(out, {f"s{k}" for k in range(40)})


def test_wrong_notes_move_one_or_two_semitones_and_are_recorded_as_pairs() -> None:
    base = _case()
    out = inject(base, 0.2, seed=3, missed=False, extra=False)
    original = {str(n["id"]): int(n["pitch"]) for n in base.perf}
    for score_id, perf_id in out.substitutions:
        played = int(out.perf["pitch"][out.perf["id"] == perf_id][0])
        assert 1 <= abs(played - original[perf_id]) <= 2
        assert ("insertion", None, perf_id) in out.truth
        assert ("deletion", score_id, None) in out.truth
        assert ("match", score_id, perf_id) not in out.truth


def test_extra_notes_sit_near_a_played_note_without_doubling_a_key() -> None:
    base = _case()
    out = inject(base, 0.1, seed=5, missed=False, wrong=False)
    added = out.perf[~np.isin(out.perf["id"], base.perf["id"])]
    assert len(added) == 4
    for note in added:
        gaps = note["onset_s"] - base.perf["onset_s"]
        near = (gaps >= 0) & (gaps <= 0.06)
        assert near.any()
        assert any(1 <= abs(int(note["pitch"]) - int(p)) <= 12 for p in base.perf["pitch"][near])
        same_key = out.perf[(out.perf["pitch"] == note["pitch"]) & (out.perf["id"] != note["id"])]
        assert np.all(np.abs(same_key["onset_s"] - note["onset_s"]) >= 0.1)
    assert np.all(np.diff(out.perf["onset_s"]) >= 0)


def test_no_new_note_restores_the_written_pitch_of_a_wrong_note() -> None:
    # chords of three keys: many wrong and extra notes, each with its neighbours close by
    n = 90
    perf = np.zeros(n, dtype=PERF_NOTE_DTYPE)
    perf["id"] = [f"n{k}" for k in range(n)]
    perf["pitch"] = [60 + (k % 3) * 2 + (k // 3) % 5 for k in range(n)]
    perf["onset_s"] = (np.arange(n) // 3) * 0.3 + (np.arange(n) % 3) * 0.01
    perf["offset_s"] = perf["onset_s"] + 0.25
    perf["velocity"] = 64
    truth: set[Triple] = {("match", f"s{k}", f"n{k}") for k in range(n)}
    base = Case("chords_p01", "chords", perf, [], truth, set(), np.zeros(0, dtype=[("id", "U32")]))
    written = {str(x["id"]): (int(x["pitch"]), float(x["onset_s"])) for x in perf}
    for seed in range(10):
        out = inject(base, 0.15, seed)
        for _, pid in out.substitutions:
            pitch, onset = written[pid]
            near = np.abs(out.perf["onset_s"] - onset) < 0.1
            assert pitch not in out.perf["pitch"][near].tolist(), (seed, pid)


def test_the_same_seed_gives_the_same_performance_and_another_does_not() -> None:
    base = _case()
    a, b, c = inject(base, 0.1, 7), inject(base, 0.1, 7), inject(base, 0.1, 8)
    assert np.array_equal(a.perf, b.perf)
    assert a.truth == b.truth
    assert not np.array_equal(a.perf, c.perf)


def test_the_seed_depends_on_the_performance_not_on_the_run() -> None:
    a = inject(_case(name="x_p01"), 0.1, 0)
    b = inject(_case(name="x_p02"), 0.1, 0)
    assert a.truth != b.truth
    assert a.truth == inject(_case(name="x_p01"), 0.1, 0).truth


@pytest.mark.parametrize("rate", [0.0, 0.03])
def test_the_input_case_is_left_untouched(rate: float) -> None:
    base = _case()
    before = (base.perf.copy(), set(base.truth))
    inject(base, rate, 1)
    assert np.array_equal(base.perf, before[0])
    assert base.truth == before[1]


def test_a_key_is_released_before_it_is_struck_again_at_the_same_instant() -> None:
    perf = np.zeros(2, dtype=PERF_NOTE_DTYPE)
    perf["id"] = ["a", "b"]
    perf["pitch"] = [60, 60]
    perf["onset_s"] = [0.0, 1.0]
    perf["offset_s"] = [1.0, 1.5]
    kinds = [(t, kind) for t, kind, _, _ in events(perf, [(1.0, 127)])]
    assert kinds == [(0.0, NOTE_ON), (1.0, NOTE_OFF), (1.0, PEDAL), (1.0, NOTE_ON), (1.5, NOTE_OFF)]
