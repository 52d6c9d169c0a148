"""The Vienna 4x22 ground truth, parsed once and cached.

``partitura.load_match`` takes about 0.3 s a file; the parsed arrays are cached under
``var/bench-cache`` as one .npz per match file, keyed by the file's mtime and size so an edited
file is parsed again.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sonata_engine.types import PERF_NOTE_DTYPE

from bench.metric import Triple

REPO = Path(__file__).resolve().parent.parent
VIENNA = Path("/work/shared/eval/vienna4x22")
CACHE = REPO / "var" / "bench-cache"
PIECES = ("Chopin_op10_no3", "Chopin_op38", "Mozart_K331_1st-mov", "Schubert_D783_no15")
CACHE_VERSION = 4

#: Fields of partitura's score note array that the peers read.
PEER_FIELDS = (
    "onset_beat",
    "duration_beat",
    "onset_quarter",
    "duration_quarter",
    "onset_div",
    "duration_div",
    "pitch",
    "voice",
    "id",
    "is_grace",
    "grace_type",
    "steal_proportion",
    "local_grace_order",
    "divs_pq",
)
TRIPLE_DTYPE = np.dtype([("label", "U9"), ("score_id", "U32"), ("perf_id", "U32")])


@dataclass
class Case:
    """One performance with its exact ground truth."""

    name: str  # e.g. "Mozart_K331_1st-mov_p01"
    piece: str
    perf: npt.NDArray[np.void]  # PERF_NOTE_DTYPE, onset order
    pedal: list[tuple[float, int]]  # (time_s, CC64 value)
    truth: set[Triple]
    substitutions: set[tuple[str, str]]  # injected wrong notes: (score_id, perf_id)
    peer_score: npt.NDArray[np.void]  # partitura score note array (grace notes included)

    @property
    def truth_score_ids(self) -> set[str]:
        return {sid for label, sid, _ in self.truth if label != "insertion" and sid is not None}


def match_files(pieces: list[str] | None = None, limit: int | None = None) -> list[Path]:
    """The match files of the chosen pieces (prefixes of the piece names), at most ``limit``
    per piece, in a fixed order."""
    chosen = [p for p in PIECES if not pieces or any(p.startswith(q) for q in pieces)]
    out: list[Path] = []
    for piece in chosen:
        files = sorted((VIENNA / "match").glob(f"{piece}_p*.match"))
        out.extend(files[:limit] if limit else files)
    return out


def load_case(path: Path) -> Case:
    stat = path.stat()
    cached = CACHE / f"{path.stem}-{stat.st_mtime_ns}-{stat.st_size}-v{CACHE_VERSION}.npz"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        for old in CACHE.glob(f"{path.stem}-*-v*.npz"):
            old.unlink(missing_ok=True)
        tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **_parse(path))
        tmp.replace(cached)
    with np.load(cached, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        truth = {
            (str(r["label"]), str(r["score_id"]) or None, str(r["perf_id"]) or None)
            for r in data["truth"]
        }
        return Case(
            name=path.stem,
            piece=meta["piece"],
            perf=data["perf"].copy(),
            pedal=[(float(t), int(v)) for t, v in data["pedal"]],
            truth=truth,
            substitutions=set(),
            peer_score=data["peer_score"].copy(),
        )


def _parse(path: Path) -> dict[str, Any]:
    import partitura as pt  # seconds to import; only a cache miss needs it

    with warnings.catch_warnings():
        # partitura warns at length about slurs and beat positions it repairs on load
        warnings.simplefilter("ignore")
        performance, alignment, score = pt.load_match(str(path), create_score=True)
        sna = score.note_array(include_grace_notes=True)

    # key release, not partitura's pedal-extended sound_off: the session gets the pedal itself
    rows = [
        (n["id"], n["pitch"], n["note_on"], n["note_off"], n["velocity"], n["channel"])
        for pp in performance.performedparts
        for n in pp.notes
    ]
    perf = np.array(rows, dtype=PERF_NOTE_DTYPE)
    perf = perf[np.lexsort((perf["pitch"], perf["onset_s"]))]

    pedal = np.array(
        [
            (c["time"], c["value"])
            for pp in performance.performedparts
            for c in pp.controls
            if c["number"] == 64
        ],
        dtype=np.float64,
    ).reshape(-1, 2)

    truth = np.array(
        [
            (row["label"], row.get("score_id", ""), row.get("performance_id", ""))
            for row in alignment
            if row["label"] in ("match", "insertion", "deletion")
        ],
        dtype=TRIPLE_DTYPE,
    )

    return {
        "meta": np.array(json.dumps({"piece": _piece_of(path.stem)})),
        "perf": perf,
        "pedal": pedal,
        "truth": truth,
        "peer_score": _peer_array(sna),
    }


def _piece_of(stem: str) -> str:
    return stem.rsplit("_p", 1)[0]


def _peer_array(sna: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    dtype = np.dtype([(name, sna.dtype[name]) for name in PEER_FIELDS])
    out = np.zeros(len(sna), dtype=dtype)
    for name in PEER_FIELDS:
        out[name] = sna[name]
    return out
