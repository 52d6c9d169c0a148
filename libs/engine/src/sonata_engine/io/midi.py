"""Standard MIDI files -> Performance (a recording) or Score (a reference piece), through mido.

A MIDI reference piece takes its hands from its tracks (exactly two tracks with notes: the first
is the right hand) or else its channels (exactly two channels: the lower-numbered one is the right
hand); otherwise hands are unknown. Its bars come from the time signature events (4/4 until the
first), its seconds from the tempo map (120 bpm until the first), and each note's velocity is its
own ``velocity_mark``.
"""

from __future__ import annotations

import io
from typing import Any

import mido
import numpy as np

from sonata_engine.errors import EngineError, PerformanceFormatError, ScoreFormatError
from sonata_engine.io._common import make_notes
from sonata_engine.io.stream import MidiEvent, build_performance
from sonata_engine.types import Measure, Performance, Score, TempoMark


def _open(data: bytes, error: type[EngineError]) -> mido.MidiFile:
    if not data:
        raise error("the MIDI file is empty")
    if data[:4] != b"MThd":
        raise error("not a MIDI file: it does not start with an MThd header")
    try:
        # clip=False: a data byte above 127 is corruption, not something to round away.
        return mido.MidiFile(file=io.BytesIO(data), clip=False)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise error(f"damaged MIDI file: {exc or type(exc).__name__}") from exc


def load_midi_performance(data: bytes) -> Performance:
    mid = _open(data, PerformanceFormatError)
    if mid.type == 2:
        raise PerformanceFormatError("MIDI type 2 (independent sequences) is not a performance")
    events: list[MidiEvent] = []
    now = 0.0
    try:
        for msg in mid:  # tracks merged, delta times already in seconds via the tempo map
            now += msg.time
            ev = _event(msg, now)
            if ev is not None:
                events.append(ev)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise PerformanceFormatError(f"damaged MIDI file: {exc}") from exc
    performance = build_performance(events, end_s=now)
    if len(performance.notes) == 0:
        raise PerformanceFormatError("the MIDI file has no notes")
    return performance


def _event(msg: Any, now: float) -> MidiEvent | None:
    if msg.type == "note_on" and msg.velocity > 0:
        return MidiEvent("note_on", now, msg.channel, pitch=msg.note, velocity=msg.velocity)
    if msg.type in ("note_on", "note_off"):
        return MidiEvent("note_off", now, msg.channel, pitch=msg.note)
    if msg.type == "control_change" and msg.control == 64:
        return MidiEvent("pedal", now, msg.channel, value=msg.value)
    return None


def load_midi_score(data: bytes) -> Score:
    mid = _open(data, ScoreFormatError)
    tpb = float(mid.ticks_per_beat)
    if tpb <= 0:
        raise ScoreFormatError("the MIDI header's division is in SMPTE frames, not ticks per beat")
    notes: list[tuple[int, int, int, float, float, int]] = []  # track, channel, pitch, on, off, vel
    tempos: dict[float, TempoMark] = {}
    signatures: dict[float, tuple[int, int]] = {}
    title = ""
    for track_no, track in enumerate(mid.tracks):
        tick = 0
        sounding: dict[tuple[int, int], tuple[int, int]] = {}
        for msg in track:
            tick += msg.time
            q = tick / tpb
            if msg.type == "set_tempo":
                tempos[q] = TempoMark(q, round(mido.tempo2bpm(msg.tempo), 6))
            elif msg.type == "time_signature":
                signatures[q] = (msg.numerator, msg.denominator)
            elif msg.type == "track_name" and not title and msg.name.strip():
                title = msg.name.strip()
            elif msg.type in ("note_on", "note_off"):
                key = (msg.channel, msg.note)
                started = sounding.pop(key, None)
                if started is not None:
                    notes.append((track_no, *key, started[0] / tpb, q, started[1]))
                if msg.type == "note_on" and msg.velocity > 0:
                    sounding[key] = (tick, msg.velocity)
        for key, (start, velocity) in sounding.items():
            notes.append((track_no, *key, start / tpb, tick / tpb, velocity))
    if not notes:
        raise ScoreFormatError("the MIDI file has no notes")
    cols = [np.array(c) for c in zip(*notes, strict=True)]
    note_track, channel, pitch, on, off, vel = cols
    onset_q = on.astype(np.float64)
    measures = _measures(signatures, float(off.max()))
    tempo_marks = [tempos[k] for k in sorted(tempos)]
    hand = _hands(note_track, channel)
    order = np.lexsort((pitch, onset_q))
    ids = np.empty(len(notes), dtype=object)
    ids[order] = [f"n{k}" for k in range(len(notes))]
    return Score(
        notes=make_notes(
            ids=list(ids),
            pitch=pitch,
            onset_q=onset_q,
            duration_q=off.astype(np.float64) - onset_q,
            staff=np.where(hand >= 0, hand + 1, 0),
            hand=hand,
            voice=note_track,
            is_grace=np.zeros(len(notes), dtype=bool),
            velocity_mark=vel,
            measures=measures,
            tempo_marks=tempo_marks,
        ),
        measures=measures,
        tempo_marks=tempo_marks,
        title=title,
    )


def _measures(signatures: dict[float, tuple[int, int]], end_q: float) -> list[Measure]:
    sig = dict(signatures)
    sig.setdefault(0.0, (4, 4))
    changes = sorted(sig)
    out: list[Measure] = []
    q = 0.0
    while q < end_q - 1e-9 or not out:
        beats, beat_type = sig[max(c for c in changes if c <= q + 1e-9)]
        length = beats * 4.0 / beat_type
        nxt = next((c for c in changes if q + 1e-9 < c < q + length - 1e-9), None)
        end = nxt if nxt is not None else q + length  # a signature mid-bar starts a new bar
        out.append(Measure(len(out), len(out) + 1, q, end, beats, beat_type))
        q = end
    return out


def _hands(track: np.ndarray, channel: np.ndarray) -> np.ndarray:
    tracks = np.unique(track)
    if len(tracks) == 2:
        return np.where(track == tracks[0], 0, 1).astype(np.int8)
    channels = np.unique(channel)
    if len(tracks) == 1 and len(channels) == 2:
        return np.where(channel == channels[0], 0, 1).astype(np.int8)
    return np.full(len(track), -1, dtype=np.int8)
