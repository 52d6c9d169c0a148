"""The sonata.v1 wire format: what is read, what is an error frame, what closes."""

import json
import re
import struct
from pathlib import Path

import pytest
from sonata_scoring.domain.protocol import (
    Auth,
    ClockReply,
    Control,
    Malformed,
    NoteEvent,
    Notes,
    Resume,
    Start,
    bearer_from_subprotocols,
    encode_binary,
    parse_binary,
    parse_text,
)
from sonata_scoring.domain.ratelimit import TokenBucket
from sonata_scoring.settings import ScoringSettings


def text(**body: object) -> str:
    return json.dumps(body)


def test_a_batch_of_json_events_with_velocity_zero_as_note_off() -> None:
    msg = parse_text(
        text(
            type="notes",
            seq=4,
            events=[
                {"t": 1.5, "kind": "on", "pitch": 60, "velocity": 70},
                {"t": 1.9, "kind": "on", "pitch": 60, "velocity": 0},
                {"t": 2.0, "kind": "pedal", "value": 127},
            ],
        ),
        max_events=8,
    )
    assert msg == Notes(
        4,
        [NoteEvent(1.5, "on", 60, 70), NoteEvent(1.9, "off", 60), NoteEvent(2.0, "pedal", 127)],
    )


def test_start_reads_every_option_and_defaults_the_rest() -> None:
    full = parse_text(
        text(type="start", seq=0, piece_id="p", bars={"first": 5, "last": 12}, hands="left",
             tempo_percent=80, mode="wait", strictness=1),
        8,
    )  # fmt: skip
    assert full == Start(0, "p", 5, 12, "left", 80.0, "wait", 1.0)
    assert parse_text(text(type="start", seq=3, piece_id="p"), 8) == Start(3, "p")


@pytest.mark.parametrize(
    ("raw", "code", "seq"),
    [
        ("{not json", "malformed", None),
        ("[1, 2]", "malformed", None),
        (text(type="notes", events=[]), "malformed", None),
        (text(type="notes", seq=-1, events=[]), "malformed", None),
        (text(type="dance", seq=2), "unknown_type", 2),
        (text(type="notes", seq=2, events=[{"t": 1, "kind": "on", "pitch": 128, "velocity": 1}]),
         "malformed", 2),
        (text(type="notes", seq=2, events=[{"t": "soon", "kind": "off", "pitch": 1}]),
         "malformed", 2),
        (text(type="notes", seq=2, events=[{"t": 1, "kind": "off", "pitch": 1}] * 9),
         "too_many_events", 2),
        (text(type="start", seq=1, piece_id="p", bars={"first": 9, "last": 2}), "malformed", 1),
        (text(type="start", seq=1, piece_id="p", tempo_percent=500), "malformed", 1),
        (text(type="start", seq=1, piece_id="p", hands="three"), "malformed", 1),
    ],
)  # fmt: skip
def test_unreadable_messages_name_the_problem_and_their_seq(
    raw: str, code: str, seq: int | None
) -> None:
    with pytest.raises(Malformed) as bad:
        parse_text(raw, max_events=8)
    assert (bad.value.code, bad.value.seq) == (code, seq)


def test_control_clock_resume_and_auth_messages() -> None:
    assert parse_text(text(type="pause", seq=7, t=3.25), 8) == Control(7, "pause", 3.25)
    assert parse_text(text(type="finish", seq=8), 8) == Control(8, "finish", None)
    assert parse_text(text(type="clock", seq=9, probe=2, client_time=5.5), 8) == ClockReply(
        9, 2, 5.5
    )
    assert parse_text(text(type="resume", seq=0, session_id="s", last_acked_seq=41), 8) == Resume(
        0, "s", 41
    )
    assert parse_text(text(type="auth", token="abc"), 8) == Auth("abc")


def test_binary_frames_round_trip_raw_midi_with_device_times() -> None:
    records = [
        (12.5, bytes([0x90, 60, 100])),
        (12.75, bytes([60, 0])),
        (13.0, bytes([0xB0, 64, 127])),
    ]
    frame = encode_binary(77, records)
    assert frame[:6] == struct.pack(">BBI", 1, 1, 77)
    assert parse_binary(frame) == Notes(77, raw_midi=records)


@pytest.mark.parametrize(
    "frame",
    [
        b"\x01",
        b"\x02\x01\x00\x00\x00\x05",  # unknown version
        struct.pack(">BBI", 1, 1, 5),  # no records
        struct.pack(">BBI", 1, 1, 5) + struct.pack(">dB", 1.0, 9) + b"\x90",  # runs past the end
        struct.pack(">BBI", 1, 1, 5) + struct.pack(">dB", float("nan"), 1) + b"\x90",
        b"\xff\x00garbage",
    ],
)
def test_garbage_binary_frames_are_malformed(frame: bytes) -> None:
    with pytest.raises(Malformed):
        parse_binary(frame)


def test_the_token_rides_in_the_subprotocol_list() -> None:
    assert bearer_from_subprotocols(["sonata.v1", "bearer.eyJ.x.y"]) == (True, "eyJ.x.y")
    assert bearer_from_subprotocols(["sonata.v1"]) == (True, None)
    assert bearer_from_subprotocols(["chat", "bearer."]) == (False, None)


def test_the_rate_limit_allows_a_burst_then_the_sustained_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1)  # one token back after 1/rate seconds
    assert not bucket.take(0.1)


def test_the_servers_frame_limit_is_the_settings_one_wherever_it_runs() -> None:
    """uvicorn refuses a frame over `--ws-max-size` before the service sees it: the image and
    `make run` give it the service's own WS_MAX_MESSAGE_BYTES, so neither limit hides the other."""
    root = Path(__file__).resolve().parents[4]
    limit = ScoringSettings.model_fields["ws_max_message_bytes"].default
    dockerfile = (root / "services" / "ai-scoring" / "Dockerfile").read_text()
    assert re.search(r'"--ws-max-size", "(\d+)"', dockerfile)[1] == str(limit)  # type: ignore[index]
    plan = (root / "deploy" / "local" / "sonata_local" / "plan.py").read_text()
    assert re.search(r'"--ws-max-size",\s*"(\d+)"', plan)[1] == str(limit)  # type: ignore[index]
