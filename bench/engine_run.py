"""Feeding one performance to the engine as a device would, and keeping what it said."""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sonata_engine import LiveSession, load_score
from sonata_engine.types import Judgement, Score, SessionOptions

from bench.groundtruth import VIENNA, Case
from bench.metric import OnlineDecisions, Triple, alignment_triples, online_triples

NOTE_OFF, PEDAL, NOTE_ON = 0, 1, 2  # at equal times a key is released before it is struck again


@dataclass
class EngineOutcome:
    online: OnlineDecisions
    offline: set[Triple] | None
    note_on_ns: npt.NDArray[np.int64]  # processing time of each note_on call
    finish_s: float | None
    errors: list[str] = field(default_factory=list)
    judgements: list[Judgement] = field(default_factory=list)


def events(
    perf: npt.NDArray[np.void], pedal: list[tuple[float, int]]
) -> list[tuple[float, int, int, Any]]:
    """Note on, note off and pedal events in time order, as a MIDI device would send them."""
    out: list[tuple[float, int, int, Any]] = []
    for k, note in enumerate(perf):
        out.append((float(note["onset_s"]), NOTE_ON, k, note))
        if np.isfinite(note["offset_s"]):
            out.append((float(note["offset_s"]), NOTE_OFF, k, note))
    out.extend((t, PEDAL, k, v) for k, (t, v) in enumerate(pedal))
    out.sort(key=lambda e: (e[0], e[1], e[2]))
    return out


def load_engine_score(piece: str) -> Score:
    """The piece through the engine's own MusicXML loader, as the product reads it."""
    return load_score(VIENNA / "musicxml" / f"{piece}.musicxml")


def run_engine(
    case: Case,
    score: Score,
    options: SessionOptions,
    *,
    offline: bool = True,
    due: Iterable[str] | None = None,
) -> EngineOutcome:
    """``due``: the score notes the session must account for (default all); one it never
    mentions counts as a deletion in the live figures."""
    # sessions on one piece share its Score, as the service shares it: they must not change it
    before = hashlib.blake2b(score.notes.tobytes()).digest()
    session = LiveSession(score, options)
    judgements: list[Judgement] = []
    timings: list[int] = []
    errors: list[str] = []
    clock = time.perf_counter_ns
    try:
        for t, kind, _, payload in events(case.perf, case.pedal):
            if kind == NOTE_ON:
                start = clock()
                out = session.note_on(
                    t, int(payload["pitch"]), int(payload["velocity"]), str(payload["id"])
                )
                timings.append(clock() - start)
                judgements.extend(out)
            elif kind == NOTE_OFF:
                judgements.extend(session.note_off(t, int(payload["pitch"])))
            else:
                session.pedal(t, int(payload))
    except Exception as exc:
        errors.append(f"live: {type(exc).__name__}: {exc} at {_where(exc)}")
    online = online_triples(
        judgements,
        (str(s) for s in score.notes["id"]) if due is None else due,
        (str(p) for p in case.perf["id"]),
    )
    offline_triples: set[Triple] | None = None
    finish_s: float | None = None
    if offline and not errors:
        try:
            start = clock()
            report = session.finish()
            finish_s = (clock() - start) / 1e9
            offline_triples = alignment_triples(report.alignment)
        except Exception as exc:
            errors.append(f"finish: {type(exc).__name__}: {exc} at {_where(exc)}")
    if hashlib.blake2b(score.notes.tobytes()).digest() != before:
        errors.append("the session changed the shared Score's notes")
    return EngineOutcome(
        online, offline_triples, np.array(timings, np.int64), finish_s, errors, judgements
    )


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno}"
