"""The evaluation metric on tiny hand-made alignments whose figures are known."""

import pytest
from sonata_engine.types import AlignmentResult, Judgement

from bench.metric import Counts, alignment_triples, compare, online_triples, peer_triples

TRUTH = {
    ("match", "s1", "p1"),
    ("match", "s2", "p2"),
    ("match", "s3", "p3"),
    ("match", "s4", "p4"),
    ("insertion", None, "p5"),
    ("deletion", "s5", None),
}


def test_a_perfect_alignment_scores_one_everywhere() -> None:
    counts = compare(TRUTH, TRUTH)
    assert counts.f("match") == 1.0
    assert counts.f("insertion") == 1.0
    assert counts.f("deletion") == 1.0
    assert counts.substitution_recall() is None


def test_one_wrong_pairing_costs_precision_and_recall() -> None:
    predicted = {
        ("match", "s1", "p1"),
        ("match", "s2", "p2"),
        ("match", "s3", "p3"),
        ("match", "s5", "p4"),  # p4 given to the wrong score note
        ("deletion", "s4", None),
        ("insertion", None, "p5"),
    }
    counts = compare(predicted, TRUTH)
    assert counts.precision("match") == pytest.approx(3 / 4)
    assert counts.recall("match") == pytest.approx(3 / 4)
    assert counts.f("match") == pytest.approx(3 / 4)
    assert counts.f("insertion") == 1.0
    # deletion: said s4 (wrong), missed s5: nothing right
    assert counts.f("deletion") == 0.0


def test_extra_and_missed_f_follow_their_own_counts() -> None:
    truth = {("insertion", None, "a"), ("insertion", None, "b"), ("deletion", "x", None)}
    predicted = {("insertion", None, "a"), ("insertion", None, "c"), ("deletion", "x", None)}
    counts = compare(predicted, truth)
    assert counts.precision("insertion") == pytest.approx(1 / 2)
    assert counts.recall("insertion") == pytest.approx(1 / 2)
    assert counts.f("deletion") == 1.0


def test_figures_are_micro_averaged_over_performances() -> None:
    total = Counts()
    # a 1-note performance all wrong, a 9-note one all right: micro recall 9/10 (macro: 0.5)
    total.add(compare({("match", "s1", "q9")}, {("match", "s1", "q1")}))
    nine = {("match", f"s{k}", f"p{k}") for k in range(9)}
    total.add(compare(nine, nine))
    assert total.recall("match") == pytest.approx(9 / 10)
    assert total.precision("match") == pytest.approx(9 / 10)


def test_a_wrong_note_counts_only_when_both_halves_are_flagged() -> None:
    truth = {
        ("insertion", None, "p1"),
        ("deletion", "s1", None),
        ("insertion", None, "p2"),
        ("deletion", "s2", None),
    }
    subs = {("s1", "p1"), ("s2", "p2")}
    # p1 and s1 flagged; p2 matched to s2 as if it were right
    predicted = {("insertion", None, "p1"), ("deletion", "s1", None), ("match", "s2", "p2")}
    counts = compare(predicted, truth, subs)
    assert counts.substitution_recall() == pytest.approx(1 / 2)


def test_empty_sides_are_perfect_only_when_both_are_empty() -> None:
    nothing = compare(set(), set())
    assert nothing.f("insertion") == 1.0
    missed_all = compare(set(), {("insertion", None, "p1")})
    assert missed_all.f("insertion") == 0.0
    invented = compare({("insertion", None, "p1")}, set())
    assert invented.f("insertion") == 0.0


def _j(kind: str, perf_id: str | None, score_id: str | None) -> Judgement:
    return Judgement(kind, perf_id, score_id, None, None, 0.0)  # type: ignore[arg-type]


def test_online_decisions_follow_the_conversion_rules() -> None:
    judgements = [
        _j("correct", "p1", "s1"),
        _j("wrong_pitch", "p2", "s2"),
        _j("extra", "p3", None),
        _j("missed", None, "s3"),
        _j("correct", "p1", "s4"),  # a second word about p1 is not its decision at arrival
    ]
    out = online_triples(judgements, ["s1", "s2", "s3", "s4", "s5"], ["p1", "p2", "p3", "p4"])
    assert out.triples == {
        ("match", "s1", "p1"),
        ("insertion", None, "p2"),
        ("deletion", "s2", None),
        ("insertion", None, "p3"),
        ("deletion", "s3", None),
        ("deletion", "s4", None),  # never mentioned by a first decision
        ("deletion", "s5", None),
        ("insertion", None, "p4"),  # never judged
    }
    assert out.unjudged_notes == 1
    assert out.repeated_judgements == 1


def test_a_note_matched_then_declared_missed_counts_against_the_session() -> None:
    out = online_triples([_j("correct", "p1", "s1"), _j("missed", None, "s1")], ["s1"], ["p1"])
    counts = compare(out.triples, {("match", "s1", "p1")})
    assert counts.f("match") == 1.0
    assert counts.precision("deletion") == 0.0


def test_engine_alignments_count_a_wrong_pitch_as_insertion_plus_deletion() -> None:
    result = AlignmentResult(
        matches=[("s1", "p1")], wrong_pitch=[("s2", "p2")], extra=["p3"], missed=["s3"]
    )
    assert alignment_triples(result) == {
        ("match", "s1", "p1"),
        ("insertion", None, "p2"),
        ("deletion", "s2", None),
        ("insertion", None, "p3"),
        ("deletion", "s3", None),
    }


def test_peer_alignment_rows_become_the_same_triples() -> None:
    rows = [
        {"label": "match", "score_id": "s1", "performance_id": "p1"},
        {"label": "insertion", "performance_id": "p2"},
        {"label": "deletion", "score_id": "s2"},
    ]
    assert peer_triples(rows) == {
        ("match", "s1", "p1"),
        ("insertion", None, "p2"),
        ("deletion", "s2", None),
    }
