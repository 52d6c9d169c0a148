"""Uploads into the engine's note shape, and a performance back out as SVG or MIDI.

The engine's reader does the parsing; this module adds the service's limits, derives the
metadata the library lists, and names every problem so an upload can be refused with a reason.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import mido
import numpy as np
from sonata_engine import EngineError, Score, load_score, score_from_dict, score_to_dict

from sonata_db.domain.errors import InvalidPieceError
from sonata_db.domain.library import BarRange, merge_sections

Format = Literal["musicxml", "mxl", "midi"]
_SUFFIX: dict[str, Format] = {".musicxml": "musicxml", ".xml": "musicxml", ".mxl": "mxl"}
_SUFFIX |= {".mid": "midi", ".midi": "midi"}
_MXL_EXPANSION = 20  # an .mxl may unpack to at most this many times the upload limit
HANDS = {0: "right", 1: "left", -1: "unknown"}
MAX_TAKE_S = 24 * 3600.0  # no stored take is longer; a time past it is not a real one


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_notes: int
    max_bars: int


@dataclass
class ParsedScore:
    score: Score
    source_format: str
    title: str
    composer: str
    time_signature: str
    duration_s: float
    bars: list[int]
    sections: list[BarRange]
    hands: list[str]


def detect_format(data: bytes, filename: str | None) -> Format:
    name = (filename or "").lower()
    for suffix, fmt in _SUFFIX.items():
        if name.endswith(suffix):
            return fmt
    if data[:4] == b"MThd":
        return "midi"
    if data[:2] == b"PK":
        return "mxl"
    if data.lstrip()[:1] == b"<":
        return "musicxml"
    raise InvalidPieceError("the file is neither MusicXML (.musicxml, .xml, .mxl) nor MIDI (.mid)")


def _check_archive(data: bytes, limits: Limits) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise InvalidPieceError(f"the .mxl file is not a valid zip archive: {exc}") from exc
    if unpacked > limits.max_bytes * _MXL_EXPANSION:
        raise InvalidPieceError("the .mxl archive unpacks to more than the size limit allows")


def parse_score(data: bytes, filename: str | None, limits: Limits) -> ParsedScore:
    """Blocking (partitura): call it off the event loop."""
    if not data:
        raise InvalidPieceError("the file is empty")
    if len(data) > limits.max_bytes:
        raise InvalidPieceError(f"the file is larger than {limits.max_bytes} bytes")
    fmt = detect_format(data, filename)
    if fmt == "mxl":
        _check_archive(data, limits)
    try:
        score = load_score(data, fmt=fmt)
    except EngineError as exc:
        raise InvalidPieceError(f"the score cannot be read: {exc}") from exc
    except Exception as exc:
        # The parser below the engine raises its own types on damaged files; the upload is
        # still only refused, with what the parser said.
        raise InvalidPieceError(f"the score cannot be read: {type(exc).__name__}: {exc}") from exc
    return describe(score, fmt, limits)


def describe(score: Score, fmt: str, limits: Limits) -> ParsedScore:
    notes = score.notes
    if len(notes) == 0:
        raise InvalidPieceError("the score has no notes")
    if len(notes) > limits.max_notes:
        raise InvalidPieceError(f"the score has {len(notes)} notes; at most {limits.max_notes}")
    if len(score.measures) > limits.max_bars:
        raise InvalidPieceError(
            f"the score has {len(score.measures)} bars; at most {limits.max_bars}"
        )
    ends = notes["onset_s"] + notes["duration_s"]
    duration = float(np.nanmax(ends)) if len(ends) else 0.0
    if not math.isfinite(duration):
        raise InvalidPieceError("the score's timing cannot be read")
    bars: list[int] = []
    for m in score.measures:
        if m.number not in bars:
            bars.append(m.number)
    by_index = {m.index: m.number for m in score.measures}
    sections = merge_sections(
        [
            (s.name, by_index[s.first_measure_index], by_index[s.last_measure_index])
            for s in score.sections
            if s.first_measure_index in by_index and s.last_measure_index in by_index
        ]
    )
    first = score.measures[0] if score.measures else None
    hands = sorted({HANDS.get(int(h), "unknown") for h in notes["hand"].tolist()})
    return ParsedScore(
        score=score,
        source_format=fmt,
        title=score.title.strip(),
        composer=score.composer.strip(),
        time_signature=f"{first.beats}/{first.beat_type}" if first else "4/4",
        duration_s=round(duration, 2),
        bars=bars,
        sections=sections,
        hands=hands,
    )


def assign_hands(parsed: ParsedScore, split_pitch: int | None, swap: bool) -> None:
    """The owner's hands for a MIDI piece: notes at or above ``split_pitch`` are the right
    hand; ``swap`` exchanges the hands the file gave."""
    hand = parsed.score.notes["hand"]
    if split_pitch is not None:
        hand[:] = np.where(parsed.score.notes["pitch"] >= split_pitch, 0, 1)
    if swap:
        hand[:] = np.where(hand == 0, 1, np.where(hand == 1, 0, hand))
    parsed.score.notes["staff"] = np.where(hand >= 0, hand + 1, 0)
    parsed.hands = sorted({HANDS.get(int(h), "unknown") for h in hand.tolist()})


HAND_CODES = {"right": 0, "left": 1}


def _note_channels(data: bytes, score: Score) -> np.ndarray:
    """The MIDI channel (1-16) of each of the score's notes, read again from the file the
    engine read it from: a note is known by its track, pitch, start and length."""
    mid = mido.MidiFile(file=io.BytesIO(data), clip=False)
    tpb = float(mid.ticks_per_beat)
    channels: dict[tuple[int, int, float, float], list[int]] = {}
    for track_no, track in enumerate(mid.tracks):
        tick = 0
        sounding: dict[tuple[int, int], int] = {}
        ended: list[tuple[int, int, int, int]] = []  # channel, pitch, start, end (ticks)
        for msg in track:
            tick += msg.time
            if msg.type not in ("note_on", "note_off"):
                continue
            key = (msg.channel, msg.note)
            start = sounding.pop(key, None)
            if start is not None:
                ended.append((*key, start, tick))
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[key] = tick
        ended += [(*key, start, tick) for key, start in sounding.items()]
        for channel, pitch, start, end in ended:
            on = start / tpb
            found = (track_no, pitch, on, end / tpb - on)
            channels.setdefault(found, []).append(channel + 1)
    out = np.zeros(len(score.notes), dtype=np.int16)
    for k, note in enumerate(score.notes):
        heard = channels.get(
            (
                int(note["voice"]),
                int(note["pitch"]),
                float(note["onset_q"]),
                float(note["duration_q"]),
            )
        )
        if not heard:
            raise InvalidPieceError("the MIDI file's channels cannot be told apart")
        out[k] = heard.pop()
    return out


def map_hands(
    parsed: ParsedScore,
    data: bytes,
    by: Literal["tracks", "channels"],
    mapping: Mapping[int, str],
) -> None:
    """The owner's hands for a MIDI piece, per track (counted from 1 in file order, the tempo
    track included) or per channel (1-16). Every track or channel with notes needs a hand,
    and every one named must have notes."""
    if parsed.source_format != "midi":
        raise InvalidPieceError(
            "hands maps a MIDI file's tracks or channels; a MusicXML score's hands come from "
            "its staves"
        )
    notes = parsed.score.notes
    if by == "tracks":
        number = notes["voice"].astype(np.int16) + 1
    else:
        number = _note_channels(data, parsed.score)
    what = "track" if by == "tracks" else "channel"
    present = sorted({int(n) for n in number.tolist()})
    unmapped = [n for n in present if n not in mapping]
    if unmapped:
        raise InvalidPieceError(
            f"{what} {', '.join(map(str, unmapped))} has notes but no hand in hands "
            f"(the file's {what}s with notes: {', '.join(map(str, present))})"
        )
    empty = sorted(n for n in mapping if n not in present)
    if empty:
        raise InvalidPieceError(
            f"hands names {what} {', '.join(map(str, empty))}, which has no notes "
            f"(the file's {what}s with notes: {', '.join(map(str, present))})"
        )
    hand = np.array([HAND_CODES[mapping[int(n)]] for n in number.tolist()], dtype=np.int8)
    notes["hand"] = hand
    notes["staff"] = hand + 1
    parsed.hands = sorted({HANDS[int(h)] for h in hand.tolist()})


def to_json(score: Score) -> dict[str, Any]:
    return score_to_dict(score)


def from_json(data: dict[str, Any]) -> Score:
    return score_from_dict(data)


def _seconds(value: Any) -> float | None:
    """A time in a take: a finite number of seconds within a session's length."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    t = float(value)
    return t if math.isfinite(t) and -MAX_TAKE_S <= t <= MAX_TAKE_S else None


def _midi_value(value: Any, default: int | None = None) -> int | None:
    """A MIDI pitch or velocity (0-127); ``default`` when absent, None when unusable."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value != int(value) or not 0 <= value <= 127:
        return None
    return int(value)


def performed_notes(report: dict[str, Any]) -> list[tuple[int, float, float, int]]:
    """(pitch, onset s, offset s, velocity) of what was played, from a stored report.

    A report carrying the engine's performance dict (`performance`) gives exact key-up times;
    otherwise each note sounds until the next note of the same pitch, at most 0.5 s. A note
    whose pitch, time or velocity is not a usable value is left out.
    """
    perf = report.get("performance")
    if isinstance(perf, dict) and isinstance(perf.get("notes"), dict):
        cols = perf["notes"]
        out = []
        for p, on, off, v in zip(
            _column(cols, "pitch"),
            _column(cols, "onset_s"),
            _column(cols, "offset_s"),
            _column(cols, "velocity"),
            strict=False,
        ):
            pitch, onset, velocity = _midi_value(p), _seconds(on), _midi_value(v, 64)
            if pitch is None or onset is None or velocity is None:
                continue
            end = _seconds(off)
            end = onset + 0.25 if end is None else end
            out.append((pitch, onset, max(end, onset + 0.01), velocity))
        return sorted(out, key=lambda n: (n[1], n[0]))
    played: list[tuple[int, float, int]] = []
    notes = report.get("notes")
    for r in notes if isinstance(notes, list) else []:
        if not isinstance(r, dict) or not r.get("perf_id"):
            continue
        pitch, onset = _midi_value(r.get("pitch"), 60), _seconds(r.get("onset_s"))
        velocity = _midi_value(r.get("velocity") or None, 64)
        if pitch is None or onset is None or velocity is None:
            continue
        played.append((pitch, onset, velocity))
    played.sort(key=lambda n: (n[1], n[0]))
    out = []
    for k, (pitch, onset, velocity) in enumerate(played):
        later = [o for p, o, _ in played[k + 1 :] if p == pitch]
        length = 0.5
        if later:
            length = min(length, later[0] - onset)
        out.append((pitch, onset, onset + max(length, 0.01), velocity))
    return out


def _column(cols: dict[str, Any], name: str) -> list[Any]:
    values = cols.get(name)
    return values if isinstance(values, list) else []


def performance_midi(notes: list[tuple[int, float, float, int]]) -> bytes:
    """A type-0 standard MIDI file at 120 bpm, 480 ticks per quarter (1 ms = 0.96 ticks)."""
    ticks_per_s = 960.0
    events: list[tuple[int, int, mido.Message]] = []
    for pitch, on, off, velocity in notes:
        pitch = min(max(pitch, 0), 127)
        vel = min(max(velocity, 1), 127)
        start = round(max(on, 0.0) * ticks_per_s)
        events.append((start, 1, mido.Message("note_on", note=pitch, velocity=vel)))
        events.append((round(max(off, on) * ticks_per_s), 0, mido.Message("note_off", note=pitch)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    out = io.BytesIO()
    mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track]).save(file=out)
    return out.getvalue()
