"""One sentence per note row saying what it was matched to and why it got its label."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_HANDS = {0: "right hand", 1: "left hand"}


def pitch_name(pitch: int) -> str:
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}" if pitch >= 0 else "?"


def _where(measure: int, beat: float, hand: int) -> str:
    hand_text = f", {_HANDS[hand]}" if hand in _HANDS else ""
    return f"bar {measure} beat {beat:.4g}{hand_text}"


def _timing(ms: float, label: str, tol: float) -> str:
    if math.isnan(ms):
        return "timing not judged"
    if label == "on_time":
        return f"on time ({ms:+.0f} ms, within ±{tol:.0f} ms)"
    return f"{abs(ms):.0f} ms {label} against your own tempo"


def reasons(rows: npt.NDArray[np.void], tol: float) -> list[str]:
    out: list[str] = []
    cols = [rows[n].tolist() for n in ("kind", "score_id", "perf_id", "pitch", "expected_pitch")]
    more = [rows[n].tolist() for n in ("measure", "beat", "hand", "onset_s", "timing_ms")]
    tail = [rows[n].tolist() for n in ("timing", "in_scope", "live", "live_score_id", "replayed")]
    for (
        kind,
        sid,
        pid,
        pitch,
        exp,
        measure,
        beat,
        hand,
        onset,
        ms,
        label,
        scope,
        live,
        lsid,
        again,
    ) in zip(*cols, *more, *tail, strict=True):
        where = _where(measure, beat, hand)
        if again:
            what = "as written" if kind == "correct" else f"for {pitch_name(exp)}"
            text = (
                f"{pid} played {pitch_name(pitch)} {what} ({sid}, {where}) in an attempt "
                "played again later: the later playing is the one scored"
            )
        elif kind == "correct":
            text = f"{pid} played {pitch_name(pitch)} as written ({sid}, {where}); "
            text += _timing(ms, label, tol)
        elif kind == "wrong_pitch":
            text = (
                f"{pid} played {pitch_name(pitch)} where the score has {pitch_name(exp)} "
                f"({sid}, {where}); {_timing(ms, label, tol)}"
            )
        elif kind == "extra" and not scope:
            text = f"{pid} {pitch_name(pitch)} at {onset:.2f} s is outside the chosen hands or bars"
        elif kind == "extra":
            text = (
                f"{pid} {pitch_name(pitch)} at {onset:.2f} s (near bar {measure}) matches no "
                "score note left to play nearby"
            )
        else:
            text = f"{sid} {pitch_name(exp)} ({where}) was not played"
        if live:
            text += f"; the live session first said {live.replace('_', ' ')}"
            if lsid and lsid != sid:
                text += f" ({lsid})"
        out.append(text)
    return out
