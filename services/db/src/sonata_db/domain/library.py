"""Rules about pieces that need no I/O: sections as bar ranges, hands, metadata limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sonata_db.domain.errors import InvalidPieceError

MAX_SECTIONS = 64
MAX_TAGS = 16


@dataclass(frozen=True)
class BarRange:
    name: str
    first_bar: int
    last_bar: int


def check_sections(sections: Sequence[BarRange], bar_numbers: Sequence[int]) -> list[BarRange]:
    """Sections the owner gives must be named, ordered ranges of bars the piece has."""
    if len(sections) > MAX_SECTIONS:
        raise InvalidPieceError(f"at most {MAX_SECTIONS} sections")
    if not bar_numbers:
        raise InvalidPieceError("the piece has no bars")
    low, high = min(bar_numbers), max(bar_numbers)
    names: set[str] = set()
    for s in sections:
        if not s.name.strip():
            raise InvalidPieceError("a section needs a name")
        if s.name in names:
            raise InvalidPieceError(f"section {s.name!r} is named twice")
        names.add(s.name)
        if s.first_bar > s.last_bar:
            raise InvalidPieceError(f"section {s.name!r} ends (bar {s.last_bar}) before it starts")
        if s.first_bar < low or s.last_bar > high:
            raise InvalidPieceError(
                f"section {s.name!r} (bars {s.first_bar}-{s.last_bar}) is outside the piece's "
                f"bars {low}-{high}"
            )
    return list(sections)


def merge_sections(numbers: Sequence[tuple[str, int, int]]) -> list[BarRange]:
    """Sections from the score in played order, with a repeated mark merged into one range."""
    merged: dict[str, BarRange] = {}
    for name, first, last in numbers:
        known = merged.get(name)
        if known is None:
            merged[name] = BarRange(name, first, last)
        else:
            merged[name] = BarRange(name, min(known.first_bar, first), max(known.last_bar, last))
    return list(merged.values())


def normalise_tags(tags: Sequence[str]) -> list[str]:
    cleaned = sorted({t.strip().lower() for t in tags if t.strip()})
    if len(cleaned) > MAX_TAGS:
        raise InvalidPieceError(f"at most {MAX_TAGS} tags")
    if any(len(t) > 40 for t in cleaned):
        raise InvalidPieceError("a tag is at most 40 characters")
    return cleaned


def bar_accuracy(bars: Sequence[dict[str, object]]) -> dict[int, float]:
    """Accuracy (0-1) per printed bar of a report; a bar played twice (repeats) is pooled."""
    correct: dict[int, int] = {}
    expected: dict[int, int] = {}
    for row in bars:
        number, exp, cor = row.get("number"), row.get("expected"), row.get("correct")
        if not isinstance(number, int) or not isinstance(exp, int) or not isinstance(cor, int):
            continue
        if exp <= 0:
            continue
        expected[number] = expected.get(number, 0) + exp
        correct[number] = correct.get(number, 0) + cor
    return {n: round(correct[n] / expected[n], 4) for n in sorted(expected)}


def section_scores(accuracy: dict[int, float], sections: Sequence[BarRange]) -> dict[str, float]:
    """Per section, the mean bar accuracy as a 0-100 score, for sections the take covered."""
    out: dict[str, float] = {}
    for s in sections:
        values = [a for bar, a in accuracy.items() if s.first_bar <= bar <= s.last_bar]
        if values:
            out[s.name] = round(100.0 * sum(values) / len(values), 1)
    return out
