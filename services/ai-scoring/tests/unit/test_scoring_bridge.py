"""The device bridge's keyboard path: MIDI messages as mido hands them over (on the port's own
thread) become binary frames that the server reads back as the same notes. python-rtmidi (and
ALSA) is not here to open a virtual port, so mido's message stream feeds the same callback."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import mido
from sonata_engine import SessionOptions, load_performance, load_score
from sonata_scoring.domain.live import LiveRun
from sonata_scoring.domain.protocol import NoteEvent, parse_binary
from sonata_scoring.entrypoints.bridge import PortFrames, encode_binary

VIENNA = Path(__file__).resolve().parents[5] / "shared" / "eval" / "vienna4x22"
TAKE = VIENNA / "midi" / "Schubert_D783_no15_p01.mid"


async def framed(messages: list[tuple[float, mido.Message]], records: int) -> list[NoteEvent]:
    """The messages through the port callback, from another thread as mido calls it, one
    frame, and the note events the server makes of it."""
    frames = PortFrames(asyncio.get_running_loop())
    feeder = threading.Thread(target=lambda: [frames.on_message(m, at) for at, m in messages])
    feeder.start()
    got: list[tuple[float, bytes]] = []
    batches = frames.batches()
    while len(got) < records:
        got += await asyncio.wait_for(anext(batches), 5)
    feeder.join()
    notes = parse_binary(encode_binary(7, got))
    assert notes.seq == 7
    run = LiveRun(load_score(VIENNA / "musicxml" / "Schubert_D783_no15.musicxml"), SessionOptions())
    return run.raw_midi(notes.raw_midi)


async def test_keys_and_pedal_are_framed_and_the_keyboards_chatter_is_not() -> None:
    events = await framed(
        [
            (0.5, mido.Message("note_on", note=60, velocity=80)),
            (0.55, mido.Message("clock")),
            (0.6, mido.Message("active_sensing")),
            (0.7, mido.Message("control_change", control=64, value=127)),
            (0.8, mido.Message("program_change", program=3)),
            (0.9, mido.Message("note_off", note=60)),
            (1.1, mido.Message("note_on", note=64, velocity=0)),  # a release, as many send it
        ],
        records=4,
    )
    assert events == [
        NoteEvent(0.5, "on", 60, 80),
        NoteEvent(0.7, "pedal", 127),
        NoteEvent(0.9, "off", 60),
        NoteEvent(1.1, "off", 64),
    ]


async def test_a_whole_take_from_midos_message_stream_arrives_as_its_notes() -> None:
    stream, t = [], 0.0
    for message in mido.MidiFile(TAKE):  # what a keyboard would send, with its times
        t += message.time
        if not message.is_meta:
            stream.append((t, message))
    forwarded = sum(m.type in ("note_on", "note_off", "control_change") for _, m in stream)
    events = await framed(stream, records=forwarded)
    ons = sorted((round(e.t, 4), e.value) for e in events if e.kind == "on")
    notes = load_performance(TAKE).notes
    assert ons == sorted((round(float(n["onset_s"]), 4), int(n["pitch"])) for n in notes)
    assert len(ons) == len(notes) > 300
