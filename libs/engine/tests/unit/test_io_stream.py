import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sonata_engine import MidiStreamParser, PerformanceFormatError, build_performance
from sonata_engine.io import MidiEvent


def kinds(events: list[MidiEvent]) -> list[tuple[str, int, int, int]]:
    return [(e.kind, e.pitch, e.velocity, e.value) for e in events]


def test_io_stream_running_status_and_velocity_zero_note_off() -> None:
    p = MidiStreamParser()
    # One status byte, then three notes' data under running status; 60 0 ends the first.
    events = p.feed(bytes([0x90, 60, 100, 64, 90, 60, 0]), 1.5)
    assert kinds(events) == [
        ("note_on", 60, 100, 0),
        ("note_on", 64, 90, 0),
        ("note_off", 60, 0, 0),
    ]
    assert {e.time_s for e in events} == {1.5}
    # Running status survives across feeds.
    assert kinds(p.feed(bytes([64, 0]), 2.0)) == [("note_off", 64, 0, 0)]


def test_io_stream_sustain_pedal_and_other_controls() -> None:
    p = MidiStreamParser()
    events = p.feed(bytes([0xB0, 64, 127, 7, 100, 64, 0]), 0.25)  # CC7 (volume) is not a pedal
    assert kinds(events) == [("pedal", -1, 0, 127), ("pedal", -1, 0, 0)]


def test_io_stream_skips_realtime_sysex_and_system_common() -> None:
    p = MidiStreamParser()
    data = bytes(
        [
            *(0xF8, 0xFE),  # clock, active sensing
            *(0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7),  # a sysex dump
            *(0x91, 0xF8, 62, 0xFE, 80),  # realtime bytes inside a note-on
            *(0xF2, 0x10, 0x20),  # song position pointer
            *(0x81, 62, 64),  # note-off with release velocity
            *(0xC0, 5),  # program change: one data byte, ignored
        ]
    )
    events = p.feed(data, 3.0)
    assert [(e.kind, e.channel, e.pitch, e.velocity) for e in events] == [
        ("note_on", 1, 62, 80),
        ("note_off", 1, 62, 0),
    ]


def test_io_stream_message_split_across_chunks_takes_the_later_time() -> None:
    p = MidiStreamParser()
    assert p.feed(bytes([0x90, 60]), 1.0) == []
    (event,) = p.feed(bytes([99]), 1.01)
    assert (event.kind, event.pitch, event.velocity, event.time_s) == ("note_on", 60, 99, 1.01)


def test_io_stream_garbage_is_a_clear_error_and_parsing_recovers() -> None:
    p = MidiStreamParser()
    with pytest.raises(PerformanceFormatError, match=r"data byte 0x3C at offset 0 has no status"):
        p.feed(bytes([60, 100]), 0.0)
    assert kinds(p.feed(bytes([0x90, 61, 70]), 0.1)) == [("note_on", 61, 70, 0)]
    with pytest.raises(PerformanceFormatError, match="not a byte"):
        p.feed([0x90, 300, 1], 0.2)
    with pytest.raises(PerformanceFormatError, match="finite"):
        p.feed(bytes([0x90, 60, 1]), float("nan"))


def test_io_stream_events_build_a_performance() -> None:
    p = MidiStreamParser()
    events = p.feed(bytes([0x90, 60, 80]), 0.0)
    events += p.feed(bytes([0xB0, 64, 100]), 0.2)
    events += p.feed(bytes([0x90, 64, 70]), 0.5)
    events += p.feed(bytes([0x80, 60, 0]), 1.0)
    events += p.feed(bytes([0x90, 64, 90]), 1.2)  # re-struck before its note-off
    events += p.feed(bytes([0x80, 99, 0]), 1.3)  # note-off with nothing sounding: ignored
    perf = build_performance(events)
    n = perf.notes
    assert n["pitch"].tolist() == [60, 64, 64]
    assert n["onset_s"].tolist() == [0.0, 0.5, 1.2]
    assert n["offset_s"][:2].tolist() == [1.0, 1.2]
    assert n["offset_s"][2] != n["offset_s"][2]  # still held: NaN
    assert n["velocity"].tolist() == [80, 70, 90]
    assert [(e.time_s, e.value) for e in perf.pedal] == [(0.2, 100)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=24), max_size=12))
def test_io_stream_any_bytes_give_events_or_a_format_error(chunks: list[bytes]) -> None:
    p = MidiStreamParser()
    for k, chunk in enumerate(chunks):
        try:
            events = p.feed(chunk, float(k))
        except PerformanceFormatError:
            continue
        for e in events:
            assert e.kind in ("note_on", "note_off", "pedal")
            assert 0 <= e.channel <= 15
            assert e.time_s == float(k)
            if e.kind == "note_on":
                assert 0 <= e.pitch <= 127
                assert 1 <= e.velocity <= 127
            if e.kind == "pedal":
                assert 0 <= e.value <= 127
