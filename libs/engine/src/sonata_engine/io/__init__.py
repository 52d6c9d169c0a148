"""The engine's edge: the only modules that read MusicXML and MIDI (partitura, mido)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sonata_engine.errors import PerformanceFormatError, ScoreFormatError
from sonata_engine.io.midi import load_midi_performance, load_midi_score
from sonata_engine.io.musicxml import load_musicxml
from sonata_engine.io.serialize import (
    performance_from_dict,
    performance_to_dict,
    score_from_dict,
    score_to_dict,
)
from sonata_engine.io.stream import MidiEvent, MidiStreamParser, build_performance
from sonata_engine.types import Performance, Score

ScoreFormat = Literal["musicxml", "mxl", "midi"]

__all__ = [
    "MidiEvent",
    "MidiStreamParser",
    "build_performance",
    "load_performance",
    "load_score",
    "performance_from_dict",
    "performance_to_dict",
    "score_from_dict",
    "score_to_dict",
]

_SUFFIX_FORMAT: dict[str, ScoreFormat] = {
    ".musicxml": "musicxml",
    ".xml": "musicxml",
    ".mxl": "mxl",
    ".mid": "midi",
    ".midi": "midi",
    ".smf": "midi",
}


def _read(source: str | Path | bytes, error: type[Exception]) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray):
        return bytes(source), ""
    path = Path(source)
    try:
        return path.read_bytes(), path.suffix.lower()
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from exc


def load_score(source: str | Path | bytes, fmt: ScoreFormat | None = None) -> Score:
    """A reference piece from a file path or its bytes; the format comes from ``fmt``, else the
    file suffix, else the content (a MIDI header, a zip archive, or XML)."""
    data, suffix = _read(source, ScoreFormatError)
    kind = fmt or _SUFFIX_FORMAT.get(suffix)
    if kind is None:
        kind = "midi" if data[:4] == b"MThd" else "musicxml"
    if kind == "midi":
        return load_midi_score(data)
    if kind in ("musicxml", "mxl"):
        return load_musicxml(data)
    raise ScoreFormatError(f"unknown score format {kind!r}: use musicxml, mxl or midi")


def load_performance(source: str | Path | bytes) -> Performance:
    """A performance from a standard MIDI file (path or bytes)."""
    data, _ = _read(source, PerformanceFormatError)
    return load_midi_performance(data)
