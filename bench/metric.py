"""The evaluation metric of ``shared/eval/README.md``: exact sets of (label, score_id, perf_id).

Per performance, the predicted alignment and the ground truth are compared as sets; the counts
are summed over a whole set of performances (micro average) before precision, recall and F are
taken. An empty denominator counts as perfect only when both sides are empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sonata_engine.types import AlignmentResult, Judgement

#: ("match", score_id, perf_id) | ("insertion", None, perf_id) | ("deletion", score_id, None)
Triple = tuple[str, str | None, str | None]
LABELS = ("match", "insertion", "deletion")


@dataclass
class Counts:
    """True positives, predicted and ground-truth totals per label, plus substitutions found."""

    tp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABELS, 0))
    pred: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABELS, 0))
    truth: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABELS, 0))
    substitutions: int = 0
    substitutions_found: int = 0

    def add(self, other: Counts) -> None:
        for label in LABELS:
            self.tp[label] += other.tp[label]
            self.pred[label] += other.pred[label]
            self.truth[label] += other.truth[label]
        self.substitutions += other.substitutions
        self.substitutions_found += other.substitutions_found

    def precision(self, label: str) -> float:
        return _ratio(self.tp[label], self.pred[label], self.truth[label])

    def recall(self, label: str) -> float:
        return _ratio(self.tp[label], self.truth[label], self.pred[label])

    def f(self, label: str) -> float:
        p, r = self.precision(label), self.recall(label)
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def substitution_recall(self) -> float | None:
        if self.substitutions == 0:
            return None
        return self.substitutions_found / self.substitutions

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "match_precision": self.precision("match"),
            "match_recall": self.recall("match"),
            "match_f": self.f("match"),
            "insertion_f": self.f("insertion"),
            "deletion_f": self.f("deletion"),
            "wrong_note_recall": self.substitution_recall(),
        }
        out["counts"] = asdict(self)
        return out


def _ratio(tp: int, denominator: int, other_side: int) -> float:
    if denominator == 0:
        return 1.0 if other_side == 0 else 0.0
    return tp / denominator


def compare(
    predicted: Iterable[Triple],
    truth: Iterable[Triple],
    substitutions: Iterable[tuple[str, str]] = (),
) -> Counts:
    """Counts for one performance. ``substitutions`` are the ground truth's wrong-pitch pairs
    (score_id meant, perf_id played); one is found when the prediction flags both halves."""
    pred_set, truth_set = set(predicted), set(truth)
    counts = Counts()
    for label, bucket in (("pred", pred_set), ("truth", truth_set)):
        for triple in bucket:
            getattr(counts, label)[triple[0]] += 1
    for triple in pred_set & truth_set:
        counts.tp[triple[0]] += 1
    for score_id, perf_id in substitutions:
        counts.substitutions += 1
        if ("insertion", None, perf_id) in pred_set and ("deletion", score_id, None) in pred_set:
            counts.substitutions_found += 1
    return counts


def alignment_triples(alignment: AlignmentResult) -> set[Triple]:
    return {(e.label, e.score_id, e.perf_id) for e in alignment.entries()}


def peer_triples(alignment: Sequence[Mapping[str, Any]]) -> set[Triple]:
    """parangonar's alignment list (dicts with label, score_id, performance_id) as triples."""
    out: set[Triple] = set()
    for row in alignment:
        label = str(row["label"])
        sid = str(row["score_id"]) if label in ("match", "deletion") else None
        pid = str(row["performance_id"]) if label in ("match", "insertion") else None
        out.add((label, sid, pid))
    return out


@dataclass
class OnlineDecisions:
    """The live decisions as triples, plus what the session failed to say."""

    triples: set[Triple]
    unjudged_notes: int  # performed notes the session returned no judgement for
    repeated_judgements: int  # later judgements of an already judged note (ignored)


def online_triples(
    judgements: Iterable[Judgement],
    score_ids: Iterable[str],
    perf_ids: Iterable[str],
) -> OnlineDecisions:
    """The first judgement of each performed note, as emitted, never corrected.

    correct -> match; wrong_pitch -> insertion + deletion; extra -> insertion; missed ->
    deletion; a score note never mentioned by the end -> deletion; a performed note never
    judged -> insertion (the session did not place it).
    """
    triples: set[Triple] = set()
    judged: set[str] = set()
    mentioned: set[str] = set()
    repeated = 0
    for j in judgements:
        if j.kind == "missed":
            if j.score_id is not None:
                triples.add(("deletion", j.score_id, None))
                mentioned.add(j.score_id)
            continue
        if j.perf_id is None:
            continue
        if j.perf_id in judged:
            repeated += 1
            continue
        judged.add(j.perf_id)
        if j.kind == "correct" and j.score_id is not None:
            triples.add(("match", j.score_id, j.perf_id))
            mentioned.add(j.score_id)
        elif j.kind == "wrong_pitch" and j.score_id is not None:
            triples.add(("insertion", None, j.perf_id))
            triples.add(("deletion", j.score_id, None))
            mentioned.add(j.score_id)
        else:
            triples.add(("insertion", None, j.perf_id))
    triples.update(("deletion", sid, None) for sid in score_ids if sid not in mentioned)
    unjudged = [pid for pid in perf_ids if pid not in judged]
    triples.update(("insertion", None, pid) for pid in unjudged)
    return OnlineDecisions(triples, len(unjudged), repeated)
