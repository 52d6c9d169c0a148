"""Raw MIDI bytes -> note and pedal events, and events -> a Performance.

``MidiStreamParser`` is fed bytes exactly as a device or a browser's Web MIDI API hands them
over, each chunk with the timestamp it arrived at; it never reads a clock. It keeps running
status across chunks, treats note-on with velocity 0 as a note-off, reports sustain pedal
(CC64), and skips realtime bytes (0xF8-0xFF, legal even inside another message), system
exclusive dumps and system common messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sonata_engine.errors import PerformanceFormatError
from sonata_engine.types import PERF_NOTE_DTYPE, PedalEvent, Performance

EventKind = Literal["note_on", "note_off", "pedal"]

SUSTAIN_CC = 64
_NOTE_OFF, _NOTE_ON, _POLY_AT, _CC, _PROGRAM, _CHAN_AT, _PITCH_BEND = range(0x80, 0xF0, 0x10)
# Data bytes that follow each channel-voice status (high nibble).
_DATA_LEN = {
    _NOTE_OFF: 2,
    _NOTE_ON: 2,
    _POLY_AT: 2,
    _CC: 2,
    _PROGRAM: 1,
    _CHAN_AT: 1,
    _PITCH_BEND: 2,
}
# System common messages and their data byte counts (0xF4/0xF5 are undefined: none).
_SYSTEM_COMMON_LEN = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF4: 0, 0xF5: 0, 0xF6: 0}
_SYSEX_START, _SYSEX_END = 0xF0, 0xF7


@dataclass(frozen=True, slots=True)
class MidiEvent:
    """One musically relevant MIDI message with the time it arrived."""

    kind: EventKind
    time_s: float
    channel: int
    pitch: int = -1  # note events
    velocity: int = 0  # note_on only; note_off carries 0
    value: int = 0  # pedal: CC64 value, >= 64 is down


class MidiStreamParser:
    """Incremental parser of a raw MIDI 1.0 byte stream (sans-IO, like ``mido.Parser``).

    A message split across two ``feed`` calls is completed by the second one and stamped with
    the second chunk's time. A data byte with no status to run on is garbage: ``feed`` raises
    ``PerformanceFormatError`` naming the byte and its offset, after resetting so that the next
    status byte starts cleanly.
    """

    __slots__ = ("_data", "_expected", "_in_sysex", "_running", "_system_left")

    def __init__(self) -> None:
        self._running: int | None = None
        self._data: list[int] = []
        self._expected = 0
        self._in_sysex = False
        self._system_left = 0  # data bytes of a system common message still to skip

    def feed(self, data: bytes | bytearray | Iterable[int], time_s: float) -> list[MidiEvent]:
        if not math.isfinite(time_s):
            raise PerformanceFormatError(f"MIDI timestamp must be a finite number, got {time_s}")
        out: list[MidiEvent] = []
        for offset, byte in enumerate(data):
            if not 0 <= byte <= 0xFF:
                self._reset()
                raise PerformanceFormatError(f"value {byte} at offset {offset} is not a byte")
            if byte >= 0xF8:
                continue  # realtime: clock, start/stop, active sensing, reset
            if self._in_sysex:
                if byte == _SYSEX_END:
                    self._in_sysex = False
                elif byte >= 0x80:
                    # An unterminated sysex ends at the next status byte.
                    self._in_sysex = False
                    self._status(byte)
                continue
            if byte >= 0x80:
                self._status(byte)
                continue
            if self._system_left:
                self._system_left -= 1
                continue
            if self._running is None:
                self._reset()
                raise PerformanceFormatError(
                    f"data byte 0x{byte:02X} at offset {offset} has no status byte before it"
                )
            self._data.append(byte)
            if len(self._data) == self._expected:
                event = self._decode(self._running, self._data, time_s)
                self._data = []
                if event is not None:
                    out.append(event)
        return out

    def _status(self, byte: int) -> None:
        self._data = []
        if byte == _SYSEX_START:
            self._in_sysex = True
            self._running = None
        elif byte in _SYSTEM_COMMON_LEN:
            self._system_left = _SYSTEM_COMMON_LEN[byte]
            self._running = None
        elif byte == _SYSEX_END:
            self._running = None  # a stray end of sysex carries nothing
        else:
            self._system_left = 0
            self._running = byte
            self._expected = _DATA_LEN[byte & 0xF0]

    def _reset(self) -> None:
        self._running = None
        self._data = []
        self._in_sysex = False
        self._system_left = 0

    @staticmethod
    def _decode(status: int, data: list[int], time_s: float) -> MidiEvent | None:
        kind, channel = status & 0xF0, status & 0x0F
        if kind == _NOTE_ON and data[1] > 0:
            return MidiEvent("note_on", time_s, channel, pitch=data[0], velocity=data[1])
        if kind in (_NOTE_ON, _NOTE_OFF):
            return MidiEvent("note_off", time_s, channel, pitch=data[0])
        if kind == _CC and data[0] == SUSTAIN_CC:
            return MidiEvent("pedal", time_s, channel, value=data[1])
        return None


def build_performance(events: Iterable[MidiEvent], *, end_s: float | None = None) -> Performance:
    """Pair note-ons with note-offs into a ``Performance``.

    A note-off closes the sounding note of that channel and pitch; a note-on on a key already
    sounding closes the earlier note first (a re-strike); a note-off with nothing sounding is
    ignored. Notes still down at the end keep ``offset_s`` NaN unless ``end_s`` is given.
    Ids are ``n<k>`` in order of (onset, pitch, offset, channel), the order partitura's MIDI
    reader uses, so a file read here and there gives the same ids.
    """
    rows: list[tuple[int, float, float, int, int]] = []
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    pedal: list[PedalEvent] = []
    for ev in events:
        if ev.kind == "pedal":
            pedal.append(PedalEvent(ev.time_s, ev.value))
            continue
        key = (ev.channel, ev.pitch)
        started = sounding.pop(key, None)
        if started is not None:
            rows.append((ev.pitch, started[0], ev.time_s, started[1], ev.channel))
        if ev.kind == "note_on":
            sounding[key] = (ev.time_s, ev.velocity)
    final = math.nan if end_s is None else end_s
    for (channel, pitch), (onset, velocity) in sounding.items():
        rows.append((pitch, onset, max(final, onset), velocity, channel))
    return Performance(notes=perf_notes_from_rows(rows), pedal=pedal)


def perf_notes_from_rows(rows: list[tuple[int, float, float, int, int]]) -> np.ndarray:
    """Rows of (pitch, onset_s, offset_s, velocity, channel) -> sorted PERF_NOTE_DTYPE array."""
    notes = np.zeros(len(rows), dtype=PERF_NOTE_DTYPE)
    if rows:
        cols = list(zip(*rows, strict=True))
        notes["pitch"] = cols[0]
        notes["onset_s"] = cols[1]
        notes["offset_s"] = cols[2]
        notes["velocity"] = cols[3]
        notes["channel"] = cols[4]
        # NaN offsets sort last among equal onsets, like a note still held.
        order = np.lexsort((notes["channel"], notes["offset_s"], notes["pitch"], notes["onset_s"]))
        notes = notes[order]
        notes["id"] = [f"n{k}" for k in range(len(notes))]
    return notes
