"""Subscores 0-100 and the overall score (formula in model.FORMULA and the README)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sonata_engine.report.model import WEIGHTS
from sonata_engine.types import SessionOptions

TEMPO_SD_ZERO = 0.3  # sd of bar-to-bar ln(bpm) changes that scores 0
VELOCITY_SD_ZERO = 20.0  # sd of bar velocities that scores 0 when no contrast is marked
MARKED_CONTRAST = 8.0  # marked bar velocities spanning less than this are one level
ARTICULATION_ZERO = 1.5  # median |log2(sounding / written)| that scores 0


def _pct(x: float) -> float:
    return round(100.0 * min(1.0, max(0.0, x)), 1)


def subscores(
    rows: npt.NDArray[np.void], bars: npt.NDArray[np.void], tol_ms: float, options: SessionOptions
) -> dict[str, float | None]:
    scoped = rows[rows["in_scope"]]
    kind = scoped["kind"]
    correct = int((kind == "correct").sum())
    denom = len(scoped)  # expected notes plus extra ones
    out: dict[str, float | None] = {"notes": _pct(correct / denom) if denom else None}

    dev = np.abs(scoped["timing_ms"][np.isfinite(scoped["timing_ms"])])
    if options.mode == "wait" or len(dev) == 0:
        out["rhythm"] = None
    else:
        credit = np.clip(1.0 - (dev - tol_ms) / (2.0 * tol_ms), 0.0, 1.0)
        out["rhythm"] = _pct(float(credit.mean()))

    bpm = bars["tempo_bpm"][np.isfinite(bars["tempo_bpm"]) & (bars["tempo_bpm"] > 0)]
    if options.mode == "wait" or len(bpm) < 3:
        out["tempo"] = None
    else:
        sd = float(np.std(np.diff(np.log(bpm))))
        out["tempo"] = _pct(1.0 - sd / TEMPO_SD_ZERO)

    ok = np.isfinite(bars["velocity"]) & np.isfinite(bars["velocity_marked"])
    played, marked = bars["velocity"][ok], bars["velocity_marked"][ok]
    if len(played) < 2:
        out["dynamics"] = None
    elif np.ptp(marked) >= MARKED_CONTRAST and np.std(played) > 0:
        r = float(np.corrcoef(played, marked)[0, 1])
        out["dynamics"] = _pct((1.0 + r) / 2.0)
    else:
        out["dynamics"] = _pct(1.0 - float(np.std(played)) / VELOCITY_SD_ZERO)

    ratio = scoped["duration_ratio"]
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if len(ratio) == 0:
        out["articulation"] = None
    else:
        spread = float(np.median(np.abs(np.log2(ratio))))
        out["articulation"] = _pct(1.0 - spread / ARTICULATION_ZERO)
    return out


def overall(subs: dict[str, float | None]) -> float:
    have = {k: v for k, v in subs.items() if v is not None}
    if not have:
        return 0.0
    total = sum(WEIGHTS[k] for k in have)
    return round(sum(WEIGHTS[k] * v for k, v in have.items()) / total, 1)
