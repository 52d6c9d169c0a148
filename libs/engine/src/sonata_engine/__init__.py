"""Sonata's comparison engine: align a piano performance with its score, live and offline.

Sans-IO: sessions are fed timestamped note events and hand back judgements; nothing here reads
a clock, a socket or a database. ``sonata_engine.io`` is the only door for MIDI and MusicXML.
"""

from __future__ import annotations

from sonata_engine.errors import (
    EngineError,
    InvalidEventError,
    PerformanceFormatError,
    ScoreFormatError,
    SessionStateError,
)
from sonata_engine.io import (
    MidiEvent,
    MidiStreamParser,
    build_performance,
    load_performance,
    load_score,
    performance_from_dict,
    performance_to_dict,
    score_from_dict,
    score_to_dict,
)
from sonata_engine.live import LiveSession
from sonata_engine.offline import align_offline
from sonata_engine.report import Finding, Report, build_report
from sonata_engine.types import (
    PERF_NOTE_DTYPE,
    SCORE_NOTE_DTYPE,
    AlignmentEntry,
    AlignmentResult,
    DynamicMark,
    Judgement,
    Measure,
    PedalEvent,
    Performance,
    Position,
    Score,
    Section,
    SessionOptions,
    TempoMark,
)

__all__ = [
    "PERF_NOTE_DTYPE",
    "SCORE_NOTE_DTYPE",
    "AlignmentEntry",
    "AlignmentResult",
    "DynamicMark",
    "EngineError",
    "Finding",
    "InvalidEventError",
    "Judgement",
    "LiveSession",
    "Measure",
    "MidiEvent",
    "MidiStreamParser",
    "PedalEvent",
    "Performance",
    "PerformanceFormatError",
    "Position",
    "Report",
    "Score",
    "ScoreFormatError",
    "Section",
    "SessionOptions",
    "SessionStateError",
    "TempoMark",
    "align_offline",
    "build_performance",
    "build_report",
    "load_performance",
    "load_score",
    "performance_from_dict",
    "performance_to_dict",
    "score_from_dict",
    "score_to_dict",
]
