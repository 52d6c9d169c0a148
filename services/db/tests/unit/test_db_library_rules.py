"""Sections as bar ranges, tags, per-bar accuracy and section scores."""

import pytest
from sonata_db.domain.errors import InvalidPieceError
from sonata_db.domain.library import (
    BarRange,
    bar_accuracy,
    check_sections,
    merge_sections,
    normalise_tags,
    section_scores,
)


def test_sections_must_lie_inside_the_piece_and_be_named_once() -> None:
    bars = list(range(1, 17))
    ok = check_sections([BarRange("A", 1, 8), BarRange("B", 9, 16)], bars)
    assert [s.name for s in ok] == ["A", "B"]
    with pytest.raises(InvalidPieceError, match="outside the piece's bars 1-16"):
        check_sections([BarRange("coda", 15, 20)], bars)
    with pytest.raises(InvalidPieceError, match="ends"):
        check_sections([BarRange("A", 9, 8)], bars)
    with pytest.raises(InvalidPieceError, match="named twice"):
        check_sections([BarRange("A", 1, 2), BarRange("A", 3, 4)], bars)


def test_a_rehearsal_mark_met_on_each_pass_of_a_repeat_is_one_range() -> None:
    merged = merge_sections([("A", 1, 8), ("B", 9, 12), ("A", 1, 8)])
    assert merged == [BarRange("A", 1, 8), BarRange("B", 9, 12)]


def test_tags_are_lower_cased_and_deduplicated() -> None:
    assert normalise_tags([" Baroque", "baroque", "", "Minuet "]) == ["baroque", "minuet"]
    with pytest.raises(InvalidPieceError):
        normalise_tags([f"t{k}" for k in range(17)])


def test_bar_accuracy_pools_repeated_bars_and_section_scores_average_them() -> None:
    bars = [
        {"number": 1, "expected": 4, "correct": 4},
        {"number": 2, "expected": 4, "correct": 2},
        {"number": 1, "expected": 4, "correct": 2},  # the repeat, played worse
        {"number": 3, "expected": 0, "correct": 0},  # a rest bar judges nothing
    ]
    accuracy = bar_accuracy(bars)
    assert accuracy == {1: 0.75, 2: 0.5}
    scores = section_scores(accuracy, [BarRange("A", 1, 2), BarRange("B", 3, 4)])
    assert scores == {"A": 62.5}
