"""Scored takes for db's tests: a report made by the engine from a real performance of a
catalogue piece, with notes left out to lower the score, wrapped in the event ai-scoring sends."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from sonata_contracts.ai_scoring import PerformanceScored
from sonata_engine import (
    PERF_NOTE_DTYPE,
    Performance,
    Score,
    SessionOptions,
    align_offline,
    build_report,
    load_score,
)


@cache
def catalogue_score(slug: str) -> Score:
    return load_score(
        (resources.files("sonata_db") / "catalogue" / f"{slug}.musicxml").read_bytes()
    )


def catalogue_bytes(slug: str) -> bytes:
    return (resources.files("sonata_db") / "catalogue" / f"{slug}.musicxml").read_bytes()


def take(slug: str, drop_every: int = 0, options: SessionOptions | None = None) -> dict[str, Any]:
    """The report of a clean take of the chosen bars at the printed tempo, missing every
    ``drop_every``-th note."""
    score = catalogue_score(slug)
    sn = score.notes
    keep = np.ones(len(sn), dtype=bool)
    if drop_every:
        keep[::drop_every] = False
    chosen = options or SessionOptions()
    if chosen.first_bar is not None and chosen.last_bar is not None:
        keep &= (sn["measure"] >= chosen.first_bar) & (sn["measure"] <= chosen.last_bar)
    played = sn[keep]
    notes = np.zeros(len(played), dtype=PERF_NOTE_DTYPE)
    notes["id"] = [f"n{k}" for k in range(len(played))]
    notes["pitch"] = played["pitch"]
    notes["onset_s"] = played["onset_s"] + 0.5
    notes["offset_s"] = notes["onset_s"] + played["duration_s"] * 0.9
    notes["velocity"] = played["velocity_mark"]
    performance = Performance(notes=notes)
    report = build_report(score, performance, align_offline(score, performance, chosen), chosen)
    return report.to_dict()


def scored(
    user_id: str, piece_id: str, report: dict[str, Any], finished_at: datetime, version: int = 1
) -> PerformanceScored:
    performance_id = f"perf-{uuid.uuid4().hex[:10]}"
    duration = float(report["summary"].get("duration_s") or 30.0)
    return PerformanceScored(
        performance_id=performance_id,
        session_id=f"session-{performance_id}",
        user_id=user_id,
        piece_id=piece_id,
        piece_version=version,
        started_at=finished_at - timedelta(seconds=duration),
        finished_at=finished_at,
        duration_s=duration,
        overall_score=float(report["overall"]),
        subscores={k: float(v) for k, v in report["subscores"].items() if v is not None},
        report=report,
    )
