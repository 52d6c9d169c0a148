"""The published peers, run in the benchmark's own process on the same cases: parangonar 3.4's
DualDTW (offline) and SLT_OLTW (online). The engine never imports these."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.groundtruth import Case
from bench.metric import Triple, peer_triples

TICKS_PER_SECOND = 960  # partitura's performance arrays: 480 ticks per 500,000 µs beat


@dataclass
class PeerOutcome:
    triples: set[Triple]
    seconds: float  # whole alignment, offline; sum of the per-note calls, online
    note_ns: npt.NDArray[np.int64] | None  # per-note decision time (online peers)


def performance_array(case: Case) -> npt.NDArray[np.void]:
    """The performance as partitura's note array, the shape the peers read."""
    perf = case.perf
    dtype = [
        ("onset_sec", "f4"),
        ("duration_sec", "f4"),
        ("onset_tick", "i4"),
        ("duration_tick", "i4"),
        ("pitch", "i4"),
        ("velocity", "i4"),
        ("track", "i4"),
        ("channel", "i4"),
        ("id", "U256"),
    ]
    out = np.zeros(len(perf), dtype=dtype)
    duration = np.nan_to_num(perf["offset_s"] - perf["onset_s"], nan=0.1)
    out["onset_sec"] = perf["onset_s"]
    out["duration_sec"] = duration
    out["onset_tick"] = np.round(perf["onset_s"] * TICKS_PER_SECOND)
    out["duration_tick"] = np.round(duration * TICKS_PER_SECOND)
    out["pitch"] = perf["pitch"]
    out["velocity"] = perf["velocity"]
    out["channel"] = perf["channel"]
    out["id"] = perf["id"]
    return out


def dualdtw(case: Case) -> PeerOutcome:
    from parangonar import DualDTWNoteMatcher

    pna = performance_array(case)
    matcher = DualDTWNoteMatcher()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alignment = matcher(case.peer_score, pna)
    return PeerOutcome(peer_triples(alignment), time.perf_counter() - start, None)


def slt_oltw(case: Case) -> PeerOutcome:
    """SLT_OLTW fed one note at a time; each note is placed the moment it arrives, the way
    parangonar's own TOLTWMatcher.offline places it, but without waiting for the next note."""
    from parangonar import TOLTWMatcher
    from parangonar.match.matchers import na_within

    pna = performance_array(case)
    matcher = TOLTWMatcher(case.peer_score, tracker_type="SLT_OLTW")
    clock = time.perf_counter_ns
    note_ns = np.zeros(len(pna), dtype=np.int64)
    for k, note in enumerate(pna):
        start = clock()
        position = matcher(note)
        onset = matcher.unique_onsets[position]
        candidates: Any = na_within(
            matcher.score_by_pitch[note["pitch"]],
            "onset_beat",
            onset,
            onset,
            exclusion_ids=matcher._snote_aligned,
        )
        if len(candidates) > 0:
            matcher.add_note_alignment(str(note["id"]), str(candidates[0]["id"]))
        note_ns[k] = clock() - start
    rows: list[dict[str, Any]] = [
        {"label": "match", "score_id": s, "performance_id": p} for s, p in matcher.alignment
    ]
    rows += [
        {"label": "deletion", "score_id": str(s)}
        for s in case.peer_score["id"]
        if str(s) not in matcher._snote_aligned
    ]
    rows += [
        {"label": "insertion", "performance_id": str(p)}
        for p in pna["id"]
        if str(p) not in matcher._pnote_aligned
    ]
    return PeerOutcome(peer_triples(rows), float(note_ns.sum()) / 1e9, note_ns)


PEERS: dict[str, tuple[str, Callable[[Case], PeerOutcome]]] = {
    "parangonar DualDTW": ("offline", dualdtw),
    "parangonar SLT_OLTW": ("online", slt_oltw),
}
