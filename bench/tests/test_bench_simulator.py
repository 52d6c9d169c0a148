"""The learner simulator's ground truth holds by construction; recovery is counted right."""

import numpy as np
from sonata_engine.types import SCORE_NOTE_DTYPE, Judgement, Measure, Score, SessionOptions

from bench.engine_run import run_engine
from bench.learners import music_keys, recovery
from bench.metric import Triple, compare
from bench.simulator import Jump, Scenario, Session, simulate

BARS = 24


def _score() -> Score:
    """24 bars of 4/4: right hand quarter notes, left hand a half-note dyad, at 120 bpm."""
    rows = []
    for bar in range(BARS):
        for beat in range(4):
            q = bar * 4 + beat
            rows.append((f"r{q}", 60 + (q * 5) % 17, q, 1.0, bar, beat, 0))
        for half in (0, 2):
            q = bar * 4 + half
            rows.append((f"la{q}", 36 + (q * 3) % 12, q, 2.0, bar, half, 1))
            rows.append((f"lb{q}", 50 + (q * 3) % 7, q, 2.0, bar, half, 1))
    notes = np.zeros(len(rows), dtype=SCORE_NOTE_DTYPE)
    for k, (sid, pitch, q, dur, bar, beat, hand) in enumerate(rows):
        notes[k] = (sid, pitch, q, dur, q * 0.5, dur * 0.5, bar + 1, bar, beat + 1, hand,
                    hand + 1, 1, False, 64)  # fmt: skip
    notes = notes[np.lexsort((notes["pitch"], notes["onset_q"]))]
    measures = [Measure(b, b + 1, 4.0 * b, 4.0 * b + 4, 4, 4) for b in range(BARS)]
    return Score(notes=notes, measures=measures)


def _consistent(session: Session, score: Score) -> None:
    case = session.case
    perf_ids = [str(p) for p in case.perf["id"]]
    assert len(set(perf_ids)) == len(perf_ids)
    said = sorted(str(pid) for label, _, pid in case.truth if label != "deletion")
    assert said == sorted(perf_ids)
    mentioned = {sid for label, sid, _ in case.truth if label != "insertion"}
    assert mentioned == {str(s) for s in score.notes["id"]}
    assert np.all(np.diff(case.perf["onset_s"]) >= 0)


def test_a_clean_pass_plays_every_score_note_once_in_order() -> None:
    score = _score()
    session = simulate(score, Scenario("clean", tempo=(1.0, 1.0)), 0, "t")
    _consistent(session, score)
    truth = session.case.truth
    assert {label for label, _, _ in truth} == {"match"}
    assert len(truth) == len(score.notes)
    assert session.jumps == []


def test_restarts_replay_notes_and_each_replay_is_its_own_match() -> None:
    score = _score()
    session = simulate(score, Scenario("restart", restarts=4), 1, "t")
    _consistent(session, score)
    matched = [sid for label, sid, _ in session.case.truth if label == "match"]
    assert len(matched) > len(set(matched))  # some score notes stand for two played notes
    assert [j.kind for j in session.jumps] == ["restart"] * 4
    for jump in session.jumps:
        first = str(jump.perf_ids[0])
        sid = next(str(s) for label, s, p in session.case.truth if p == first and label == "match")
        bar_of = {str(n["id"]): int(n["measure_index"]) for n in score.notes}
        starts = {str(n["id"]) for n in score.notes if n["onset_q"] == 4 * bar_of[sid]}
        assert sid in starts  # a restart begins at the start of a bar


def test_half_tempo_takes_twice_as_long() -> None:
    score = _score()
    fast = simulate(score, Scenario("a", tempo=(1.0, 1.0)), 2, "t").case.perf["onset_s"]
    slow = simulate(score, Scenario("a", tempo=(0.5, 0.5)), 2, "t").case.perf["onset_s"]
    ratio = (slow[-1] - slow[0]) / (fast[-1] - fast[0])
    assert 1.6 < ratio < 2.5


def test_one_hand_only_leaves_the_other_hands_notes_missed() -> None:
    score = _score()
    session = simulate(score, Scenario("rh", one_hand="right"), 3, "t")
    _consistent(session, score)
    deleted = {sid for label, sid, _ in session.case.truth if label == "deletion"}
    left = {str(n["id"]) for n in score.notes if n["hand"] == 1}
    assert deleted == left


def test_a_session_told_to_follow_one_hand_owes_nothing_for_the_other() -> None:
    score = _score()
    session = simulate(score, Scenario("rh", one_hand="right", tell_hand=True), 3, "t")
    assert session.options.hands == "right"
    right = {str(n["id"]) for n in score.notes if n["hand"] != 1}
    assert set(session.due or ()) == right
    assert {label for label, _, _ in session.case.truth} == {"match"}


def test_wrong_note_bursts_are_recorded_as_substitutions() -> None:
    score = _score()
    session = simulate(score, Scenario("bursts", bursts=0.2), 4, "t")
    _consistent(session, score)
    subs = session.case.substitutions
    assert len(subs) >= 6
    pitch_of = {str(n["id"]): int(n["pitch"]) for n in score.notes}
    played = {str(p["id"]): int(p["pitch"]) for p in session.case.perf}
    for sid, pid in subs:
        assert 1 <= abs(played[pid] - pitch_of[sid]) <= 2


def test_pauses_leave_silences_of_seconds() -> None:
    session = simulate(_score(), Scenario("p", pauses=3), 5, "t")
    gaps = np.diff(session.case.perf["onset_s"])
    assert np.sum(gaps >= 3.0) >= 3


def _judge(kind: str, pid: str, sid: str | None) -> Judgement:
    return Judgement(kind, pid, sid, None, None, 0.0)  # type: ignore[arg-type]


def test_recovery_counts_the_wrong_decisions_before_the_session_settles() -> None:
    truth: set[Triple] = {("match", f"s{k}", f"p{k}") for k in range(10)}
    session = simulate(_score(), Scenario("clean"), 0, "t")
    session.case.truth = truth
    session.jumps = [Jump("jump back", [f"p{k}" for k in range(10)])]
    said = [_judge("extra", "p0", None), _judge("correct", "p1", "s7")]
    said += [_judge("correct", f"p{k}", f"s{k}") for k in range(2, 10)]
    assert recovery(session, said, None) == [2]
    lost = [_judge("correct", f"p{k}", "s0") for k in range(10)]
    assert recovery(session, lost, None) == [None]


def test_a_bar_written_twice_counts_as_the_same_music_only_in_the_loose_figure() -> None:
    twice = _score()
    half = twice.notes[twice.notes["onset_q"] < 8].copy()  # bars 1-2
    again = half.copy()
    again["id"] = [f"b{sid}" for sid in half["id"]]
    again["onset_q"] += 8
    third = half.copy()
    third["id"] = [f"c{sid}" for sid in half["id"]]
    third["onset_q"] += 16
    third["pitch"] += 1  # different music after the repeat, so the keys see a difference
    twice.notes = np.concatenate([half, again, third])
    first_bar = [str(s) for s in half["id"][half["onset_q"] < 4]]
    session = simulate(twice, Scenario("clean"), 0, "t")
    session.case.truth = {("match", sid, f"p{k}") for k, sid in enumerate(first_bar)}
    session.jumps = [Jump("jump back", [f"p{k}" for k in range(len(first_bar))])]
    said = [_judge("correct", f"p{k}", f"b{sid}") for k, sid in enumerate(first_bar)]
    assert recovery(session, said, None) == [None]
    assert recovery(session, said, music_keys(twice)) == [0]
    other = [_judge("correct", f"p{k}", f"c{sid}") for k, sid in enumerate(first_bar)]
    assert recovery(session, other, music_keys(twice)) == [None]


def test_a_clean_simulated_pass_fed_to_the_engine_scores_perfectly() -> None:
    score = _score()
    session = simulate(score, Scenario("clean", tempo=(1.0, 1.0)), 0, "t")
    outcome = run_engine(session.case, score, SessionOptions())
    assert outcome.errors == []
    assert outcome.online.unjudged_notes == 0
    online = compare(outcome.online.triples, session.case.truth)
    assert online.f("match") == 1.0
    assert outcome.offline is not None
    assert compare(outcome.offline, session.case.truth).f("match") == 1.0
