"""One live run: the engine's session plus what the protocol adds around it (device clock,
pauses, a log of everything applied so another process can rebuild the run). Pure."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sonata_engine import (
    Judgement,
    LiveSession,
    MidiStreamParser,
    Position,
    Report,
    Score,
    SessionOptions,
)

from sonata_scoring.domain.protocol import NoteEvent

# How many of the device clock's measured jitters the server's clock waits beyond a note's
# time before it calls the note missed: a jittery device's notes may still be on their way.
MISS_MARGIN_JITTERS = 3.0
_JUDGEMENT_FIELDS = tuple(f.name for f in fields(Judgement))
_POSITION_FIELDS = tuple(f.name for f in fields(Position))


def judgement_dict(j: Judgement) -> dict[str, Any]:
    """`j.to_dict()` without `dataclasses.asdict`'s generic deep copy, which cost a sixth of the
    server's CPU per note: every field is immutable but the position, a flat dataclass."""
    out = {name: getattr(j, name) for name in _JUDGEMENT_FIELDS}
    pos = out["position"]
    if pos is not None:
        out["position"] = {name: getattr(pos, name) for name in _POSITION_FIELDS}
    return out


# A log row: [seq, op, *args]: the client message it came with, then op "e" (a NoteEvent row),
# "pause", "continue", "advance" or "offset".
LogRow = list[Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    judgements: list[Judgement]
    position: dict[str, Any] | None
    tempo_bpm: float


class LiveRun:
    def __init__(self, score: Score, options: SessionOptions) -> None:
        self.session = LiveSession(score, options)
        self.parser = MidiStreamParser()
        self.offset_s = 0.0  # device clock minus server clock, once calibrated
        self.margin_s = 0.0  # MISS_MARGIN_JITTERS times the calibration's jitter
        self.calibrated = False
        self.paused_at: float | None = None
        self.paused_total = 0.0
        self.last_t: float | None = None
        self.log: list[LogRow] = []

    @classmethod
    def rebuild(
        cls, score: Score, options: SessionOptions, log: list[LogRow], replay_after: int
    ) -> tuple[LiveRun, dict[int, list[Judgement]]]:
        """The run in the state `log` left it, and the judgements of every message after
        `replay_after` (what a reconnecting client has not seen), by seq."""
        run = cls(score, options)
        replay: dict[int, list[Judgement]] = {}
        for row in log:
            judged = run.apply(row)
            if row[0] > replay_after and row[1] == "e":
                replay.setdefault(row[0], []).extend(judged)
        return run, replay

    # -- what the protocol asks ---------------------------------------------------------------
    def notes(self, seq: int, events: list[NoteEvent]) -> Outcome:
        out: list[Judgement] = []
        for event in events:
            out.extend(self.apply([seq, "e", *event.to_row()]))
        return self.outcome(out)

    def raw_midi(self, records: list[tuple[float, bytes]]) -> list[NoteEvent]:
        """Raw MIDI bytes as note events (raises the engine's PerformanceFormatError)."""
        events: list[NoteEvent] = []
        for t, data in records:
            for m in self.parser.feed(data, time_s=t):
                if m.kind == "note_on":
                    events.append(NoteEvent(t, "on", m.pitch, m.velocity))
                elif m.kind == "note_off":
                    events.append(NoteEvent(t, "off", m.pitch))
                else:
                    events.append(NoteEvent(t, "pedal", m.value))
        return events

    def pause(self, seq: int, t: float | None) -> None:
        if self.paused_at is None:
            self.apply([seq, "pause", t if t is not None else self.last_t])

    def resume_play(self, seq: int, t: float | None) -> None:
        if self.paused_at is not None:
            self.apply([seq, "continue", t])

    def advance_to_server_time(self, seq: int, server_now: float) -> list[Judgement]:
        """Missed notes the server clock proves, once the device clock is known."""
        if not self.calibrated or self.paused_at is not None or self.last_t is None:
            return []
        device_now = server_now + self.offset_s - self.margin_s
        judged = self._advance(device_now)
        if judged:
            self.log.append([seq, "advance", device_now])
        return judged

    def set_offset(self, seq: int, offset_s: float, jitter_s: float = 0.0) -> None:
        """The calibration's result: the device clock's offset, and its jitter, which widens
        the margin the server's clock leaves before calling a note missed."""
        self.apply([seq, "offset", offset_s, jitter_s])

    def finish(self) -> Report:
        return self.session.finish()

    def outcome(self, judgements: list[Judgement]) -> Outcome:
        pos = self.session.position
        position = None if pos is None else {"measure": pos.measure, "beat": pos.beat}
        return Outcome(judgements, position, self.session.tempo_bpm)

    # -- the one door every change goes through, live and on rebuild --------------------------
    def apply(self, row: LogRow) -> list[Judgement]:
        self.log.append(row)
        op, args = row[1], row[2:]
        if op == "e":
            return self._event(NoteEvent.from_row(args))
        if op == "pause":
            self.paused_at = args[0]
        elif op == "continue":
            resumed_at = args[0]
            if self.paused_at is not None and resumed_at is not None:
                self.paused_total += max(0.0, resumed_at - self.paused_at)
            self.paused_at = None
        elif op == "advance":
            return self._advance(args[0])
        elif op == "offset":
            self.offset_s = float(args[0])
            # rows written before the jitter was kept have none
            self.margin_s = MISS_MARGIN_JITTERS * float(args[1]) if len(args) > 1 else 0.0
            self.calibrated = True
        return []

    def _event(self, e: NoteEvent) -> list[Judgement]:
        self.last_t = e.t
        t = e.t - self.paused_total
        if e.kind == "on":
            return self.session.note_on(t, e.value, e.velocity)
        if e.kind == "off":
            return self.session.note_off(t, e.value)
        self.session.pedal(t, e.value)
        return []

    def _advance(self, device_t: float) -> list[Judgement]:
        return self.session.advance(device_t - self.paused_total)
