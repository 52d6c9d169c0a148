"""The live protocol `sonata.v1`: client messages parsed into values. Pure, no I/O.

A message the server cannot read is a `Malformed` (an error frame, the session goes on); a
message that breaks the rules of the conversation is a `Violation` (the connection closes).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

PROTOCOL = "sonata.v1"
BEARER_PREFIX = "bearer."

# Binary note frame: header ">BBI" = version 1, kind 1 (raw MIDI), seq (uint32); then records
# ">dB" = device time in seconds (float64) and n, followed by n raw MIDI 1.0 bytes.
BINARY_VERSION = 1
BINARY_KIND_MIDI = 1
_HEADER = struct.Struct(">BBI")
_RECORD = struct.Struct(">dB")

EventKind = Literal["on", "off", "pedal"]


class Malformed(ValueError):  # noqa: N818 - a protocol outcome, named as the spec does
    """The message cannot be read; the seq is known when the message got that far."""

    def __init__(self, detail: str, seq: int | None = None, code: str = "malformed") -> None:
        super().__init__(detail)
        self.seq = seq
        self.code = code


class Violation(ValueError):  # noqa: N818 - a protocol outcome, named as the spec does
    """The client broke the protocol: the server closes with `close_code`."""

    def __init__(self, detail: str, close_code: int = 1008) -> None:
        super().__init__(detail)
        self.close_code = close_code


@dataclass(frozen=True, slots=True)
class NoteEvent:
    t: float  # device time, seconds
    kind: EventKind
    value: int  # pitch, or the pedal's CC64 value
    velocity: int = 0

    def to_row(self) -> list[Any]:
        return [self.t, self.kind, self.value, self.velocity]

    @staticmethod
    def from_row(row: list[Any]) -> NoteEvent:
        return NoteEvent(float(row[0]), row[1], int(row[2]), int(row[3]))


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class Start:
    seq: int
    piece_id: str
    first_bar: int | None = None
    last_bar: int | None = None
    hands: Literal["both", "right", "left"] = "both"
    tempo_percent: float = 100.0
    mode: Literal["performance", "wait"] = "performance"
    strictness: float = 0.5


@dataclass(frozen=True, slots=True)
class Notes:
    seq: int
    events: list[NoteEvent] = field(default_factory=list)
    raw_midi: list[tuple[float, bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Control:
    """pause / continue / finish / ping / calibrate, each with its seq and optional time."""

    seq: int
    kind: Literal["pause", "continue", "finish", "ping", "calibrate"]
    t: float | None = None


@dataclass(frozen=True, slots=True)
class ClockReply:
    seq: int
    probe: int
    client_time: float


@dataclass(frozen=True, slots=True)
class Resume:
    seq: int
    session_id: str
    last_acked_seq: int


Message = Auth | Start | Notes | Control | ClockReply | Resume


def _number(body: dict[str, Any], key: str, seq: int | None, *, default: Any = None) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Malformed(f"{key} must be a finite number", seq)
    return float(value)


def _int(body: dict[str, Any], key: str, seq: int | None, lo: int, hi: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Malformed(f"{key} must be an integer {lo}-{hi}", seq)
    return value


def _optional_bar(body: dict[str, Any], key: str, seq: int) -> int | None:
    if body.get(key) is None:
        return None
    return _int(body, key, seq, 1, 100_000)


def parse_text(text: str, max_events: int) -> Message:
    try:
        # orjson: a few times faster than json on every message; strict JSON, so NaN and
        # Infinity literals are not JSON either
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Malformed("not JSON") from None
    if not isinstance(body, dict):
        raise Malformed("a message is a JSON object")
    kind = body.get("type")
    if kind == "auth":
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise Malformed("auth needs a token")
        return Auth(token)
    raw_seq = body.get("seq")
    if isinstance(raw_seq, bool) or not isinstance(raw_seq, int) or not 0 <= raw_seq < 2**32:
        raise Malformed("every message carries seq, an integer 0 to 2^32-1")
    seq: int = raw_seq
    if kind == "notes":
        events = body.get("events")
        if not isinstance(events, list) or not events:
            raise Malformed("notes needs a non-empty events list", seq)
        if len(events) > max_events:
            raise Malformed(f"at most {max_events} events per message", seq, "too_many_events")
        return Notes(seq, [_event(e, seq) for e in events])
    if kind == "start":
        return _start(body, seq)
    if kind in ("pause", "continue", "finish", "ping", "calibrate"):
        t = None if body.get("t") is None else _number(body, "t", seq)
        return Control(seq, kind, t)
    if kind == "clock":
        probe = _int(body, "probe", seq, 0, 2**31)
        return ClockReply(seq, probe, _number(body, "client_time", seq))
    if kind == "resume":
        session_id = body.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise Malformed("resume needs session_id", seq)
        return Resume(seq, session_id, _int(body, "last_acked_seq", seq, -1, 2**32))
    raise Malformed(f"unknown message type {kind!r}", seq, "unknown_type")


def _event(e: Any, seq: int) -> NoteEvent:
    if not isinstance(e, dict):
        raise Malformed("each event is an object", seq)
    t = _number(e, "t", seq)
    kind = e.get("kind")
    if kind == "on":
        velocity = _int(e, "velocity", seq, 0, 127)
        pitch = _int(e, "pitch", seq, 0, 127)
        return NoteEvent(t, "off", pitch) if velocity == 0 else NoteEvent(t, "on", pitch, velocity)
    if kind == "off":
        return NoteEvent(t, "off", _int(e, "pitch", seq, 0, 127))
    if kind == "pedal":
        return NoteEvent(t, "pedal", _int(e, "value", seq, 0, 127))
    raise Malformed("event kind must be on, off or pedal", seq)


def _start(body: dict[str, Any], seq: int) -> Start:
    piece_id = body.get("piece_id")
    if not isinstance(piece_id, str) or not piece_id:
        raise Malformed("start needs piece_id", seq)
    bars = body.get("bars")
    first = last = None
    if bars is not None:
        if not isinstance(bars, dict):
            raise Malformed("bars is an object {first, last}", seq)
        first, last = _optional_bar(bars, "first", seq), _optional_bar(bars, "last", seq)
        if first is not None and last is not None and first > last:
            raise Malformed("bars.first is after bars.last", seq)
    hands = body.get("hands", "both")
    if hands not in ("both", "right", "left"):
        raise Malformed("hands is both, right or left", seq)
    mode = body.get("mode", "performance")
    if mode not in ("performance", "wait"):
        raise Malformed("mode is performance or wait", seq)
    tempo = _number(body, "tempo_percent", seq, default=100.0)
    strictness = _number(body, "strictness", seq, default=0.5)
    if not 10.0 <= tempo <= 200.0:
        raise Malformed("tempo_percent must be 10-200", seq)
    if not 0.0 <= strictness <= 1.0:
        raise Malformed("strictness must be 0-1", seq)
    return Start(seq, piece_id, first, last, hands, tempo, mode, strictness)


def parse_binary(data: bytes) -> Notes:
    if len(data) < _HEADER.size:
        raise Malformed("binary frame shorter than its 6-byte header")
    version, kind, seq = _HEADER.unpack_from(data)
    if version != BINARY_VERSION or kind != BINARY_KIND_MIDI:
        raise Malformed(f"unknown binary frame version {version} kind {kind}", seq)
    records: list[tuple[float, bytes]] = []
    at = _HEADER.size
    while at < len(data):
        if at + _RECORD.size > len(data):
            raise Malformed("binary record cut short", seq)
        t, n = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        if at + n > len(data) or n == 0:
            raise Malformed("binary record length runs past the frame or is 0", seq)
        if not math.isfinite(t):
            raise Malformed("binary record time must be finite", seq)
        records.append((t, data[at : at + n]))
        at += n
    if not records:
        raise Malformed("binary frame carries no records", seq)
    return Notes(seq, raw_midi=records)


def encode_binary(seq: int, records: list[tuple[float, bytes]]) -> bytes:
    """The client side of the binary layout (the bridge and the tests use it)."""
    parts = [_HEADER.pack(BINARY_VERSION, BINARY_KIND_MIDI, seq)]
    for t, raw in records:
        parts.append(_RECORD.pack(t, len(raw)) + raw)
    return b"".join(parts)


def bearer_from_subprotocols(offered: list[str]) -> tuple[bool, str | None]:
    """(speaks sonata.v1, the token offered as `bearer.<token>` if any)."""
    token = next((p[len(BEARER_PREFIX) :] for p in offered if p.startswith(BEARER_PREFIX)), None)
    return PROTOCOL in offered, token or None
