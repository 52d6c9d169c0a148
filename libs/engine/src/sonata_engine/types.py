"""The engine's one note shape, and the values a session hands back.

Only ``sonata_engine.io`` turns MIDI or MusicXML into these; everything else in the engine (and
every caller: the WebSocket entrypoint, the CLI, the benchmarks) speaks them. Times are in
seconds, score positions in quarter notes from the start of the unfolded score, bars are the
printed bar numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

#: One row per score note after repeats are unfolded and ties merged, sorted by onset then pitch.
SCORE_NOTE_DTYPE = np.dtype(
    [
        ("id", "U32"),  # the source's note id; unfolded repeats get "-1", "-2" suffixes
        ("pitch", "i2"),  # MIDI pitch
        ("onset_q", "f8"),  # quarter notes from the start of the unfolded score
        ("duration_q", "f8"),  # quarters; 0 for grace notes
        ("onset_s", "f8"),  # seconds at the printed tempo (tempo marks, else 120 bpm)
        ("duration_s", "f8"),
        ("measure", "i4"),  # printed bar number
        ("measure_index", "i4"),  # 0-based index of the bar in unfolded (played) order
        ("beat", "f4"),  # 1-based beat within the bar, in the time signature's beats
        ("hand", "i1"),  # 0 right, 1 left, -1 unknown
        ("staff", "i1"),
        ("voice", "i2"),
        ("is_grace", "?"),
        ("velocity_mark", "i2"),  # MIDI velocity the marked dynamic asks for (mf = 64)
    ]
)

#: One row per performed note, in order of onset.
PERF_NOTE_DTYPE = np.dtype(
    [
        ("id", "U32"),
        ("pitch", "i2"),
        ("onset_s", "f8"),
        ("offset_s", "f8"),  # NaN while the key is still down
        ("velocity", "i2"),
        ("channel", "i1"),
    ]
)

ScoreNotes = npt.NDArray[np.void]
PerfNotes = npt.NDArray[np.void]

Hand = Literal["right", "left", "both"]
Mode = Literal["performance", "wait"]
JudgementKind = Literal["correct", "wrong_pitch", "extra", "missed"]
TimingLabel = Literal["early", "on_time", "late", "not_judged"]
AlignmentLabel = Literal["match", "insertion", "deletion"]


@dataclass(frozen=True, slots=True)
class Measure:
    index: int  # 0-based, unfolded order
    number: int  # printed
    start_q: float
    end_q: float
    beats: int  # time signature numerator
    beat_type: int  # time signature denominator


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    first_measure_index: int
    last_measure_index: int  # inclusive


@dataclass(frozen=True, slots=True)
class TempoMark:
    onset_q: float
    bpm: float  # quarter notes per minute
    text: str = ""


@dataclass(frozen=True, slots=True)
class DynamicMark:
    onset_q: float
    marking: str  # "pp", "mf", "cresc." ...
    velocity: int
    staff: int = -1


@dataclass(slots=True)
class Score:
    """A reference piece in the engine's shape."""

    notes: ScoreNotes
    measures: list[Measure]
    sections: list[Section] = field(default_factory=list)
    tempo_marks: list[TempoMark] = field(default_factory=list)
    dynamics: list[DynamicMark] = field(default_factory=list)
    title: str = ""
    composer: str = ""


@dataclass(slots=True)
class PedalEvent:
    time_s: float
    value: int  # CC64 value, >= 64 is down


@dataclass(slots=True)
class Performance:
    notes: PerfNotes
    pedal: list[PedalEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SessionOptions:
    hands: Hand = "both"
    first_bar: int | None = None  # printed bar numbers, inclusive; None = whole piece
    last_bar: int | None = None
    tempo_percent: float = 100.0  # practice tempo relative to the printed one
    mode: Mode = "performance"  # "wait": pitch only, timing not judged
    strictness: float = 0.5  # 0 lenient .. 1 strict: scales the timing tolerances


@dataclass(frozen=True, slots=True)
class Position:
    measure: int  # printed bar number
    beat: float  # 1-based
    onset_q: float


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the session says about one note, at the moment it can say it.

    ``score_id`` is the score note matched (``correct``), the one the learner clearly meant
    (``wrong_pitch``), or the one passed without being played (``missed``); ``perf_id`` is the
    performed note (absent for ``missed``). ``reason`` says in words why.
    """

    kind: JudgementKind
    perf_id: str | None
    score_id: str | None
    pitch: int | None  # played
    expected_pitch: int | None
    time_s: float  # when the session decided (the note's own timestamp for played notes)
    timing_ms: float | None = None  # + late / - early, against the learner's own tempo
    timing_beats: float | None = None
    timing: TimingLabel = "not_judged"
    velocity: int | None = None
    expected_velocity: int | None = None
    position: Position | None = None
    tempo_bpm: float | None = None  # the learner's current tempo, quarter notes per minute
    hand: int = -1
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AlignmentEntry:
    label: AlignmentLabel
    score_id: str | None
    perf_id: str | None


PassKind = Literal["start", "restart", "jump back", "jump ahead"]


@dataclass(frozen=True, slots=True)
class AlignmentPass:
    """One attempt: a stretch of the score played forwards without going back.

    A score note is named at most once per pass. ``missed`` holds the notes skipped inside the
    stretch the pass covered (from its first to its last placed note): the unplayed end of a
    bar the learner broke off to restart is not missed.
    """

    index: int
    kind: PassKind
    first_measure_index: int  # played order, inclusive
    last_measure_index: int
    start_s: float
    end_s: float
    matches: list[tuple[str, str]]
    wrong_pitch: list[tuple[str, str]]
    missed: list[str]


@dataclass(slots=True)
class AlignmentResult:
    """A whole-performance alignment: every performed note appears once.

    A learner who restarts a bar or jumps back plays score notes again: each such attempt is
    one of ``passes``, and a score note appears in ``matches`` / ``wrong_pitch`` once per pass
    that played it. ``missed`` names each score note at most once: skipped inside some pass, or
    never played at all. A wrong pitch pairs the performed note with the score note it stood
    for; in the evaluation's terms it counts as one insertion plus one deletion. The report
    judges each score note by its last playing; earlier ones are attempts.
    """

    matches: list[tuple[str, str]]  # (score_id, perf_id)
    wrong_pitch: list[tuple[str, str]]  # (score_id meant, perf_id played)
    extra: list[str]  # perf ids
    missed: list[str]  # score ids
    passes: list[AlignmentPass] = field(default_factory=list)  # time order; empty: one pass

    def entries(self) -> list[AlignmentEntry]:
        out = [AlignmentEntry("match", s, p) for s, p in self.matches]
        for s, p in self.wrong_pitch:
            out.append(AlignmentEntry("insertion", None, p))
            out.append(AlignmentEntry("deletion", s, None))
        out.extend(AlignmentEntry("insertion", None, p) for p in self.extra)
        out.extend(AlignmentEntry("deletion", s, None) for s in self.missed)
        return out
