import io
import math
from pathlib import Path

import mido
import numpy as np
import pytest
from sonata_engine import PerformanceFormatError, ScoreFormatError, load_performance, load_score


def midi_bytes(tracks: list[list[mido.Message | mido.MetaMessage]], tpb: int = 480) -> bytes:
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    for msgs in tracks:
        mid.tracks.append(mido.MidiTrack(msgs))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def two_hand_file() -> bytes:
    conductor = [
        mido.MetaMessage("track_name", name="Study", time=0),
        mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=0),
        # From the second bar on: 120 bpm.
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=3 * 480),
    ]
    right = [
        mido.Message("note_on", note=72, velocity=70, time=0),
        mido.Message("note_off", note=72, velocity=0, time=480),
        # Velocity-0 note-on ends a note, as most keyboards send it.
        mido.Message("note_on", note=74, velocity=90, time=0),
        mido.Message("note_on", note=74, velocity=0, time=480),
        mido.Message("control_change", control=64, value=127, time=0),
        mido.Message("note_on", note=76, velocity=60, time=480),
        mido.Message("control_change", control=64, value=0, time=480),
        mido.Message("note_on", note=76, velocity=0, time=0),
    ]
    left = [
        mido.Message("note_on", note=48, velocity=50, channel=1, time=0),
        mido.Message("note_on", note=48, velocity=0, channel=1, time=3 * 480),
        mido.Message("note_on", note=43, velocity=55, channel=1, time=0),
        mido.Message("note_off", note=43, velocity=0, channel=1, time=480),
    ]
    return midi_bytes([conductor, right, left])


def test_io_midi_performance_round_trip_through_mido(tmp_path: Path) -> None:
    path = tmp_path / "take.mid"
    path.write_bytes(two_hand_file())
    perf = load_performance(path)
    n = perf.notes
    assert n["pitch"].tolist() == [48, 72, 74, 43, 76]  # by onset, then pitch
    assert n["id"].tolist() == ["n0", "n1", "n2", "n3", "n4"]
    # First bar at 60 bpm (1 s per quarter), then 120 bpm.
    np.testing.assert_allclose(n["onset_s"], [0.0, 0.0, 1.0, 3.0, 3.0])
    np.testing.assert_allclose(n["offset_s"], [3.0, 1.0, 2.0, 3.5, 3.5])
    assert n["velocity"].tolist() == [50, 70, 90, 55, 60]
    assert n["channel"].tolist() == [1, 0, 0, 1, 0]
    assert [(p.time_s, p.value) for p in perf.pedal] == [(2.0, 127), (3.5, 0)]


def test_io_midi_score_takes_hands_from_tracks_and_bars_from_the_time_signature() -> None:
    score = load_score(two_hand_file())
    n = score.notes
    assert score.title == "Study"
    assert [(m.number, m.start_q, m.end_q, m.beats) for m in score.measures] == [
        (1, 0.0, 3.0, 3),
        (2, 3.0, 6.0, 3),
    ]
    by_pitch = {int(r["pitch"]): r for r in n}
    assert by_pitch[72]["hand"] == 0
    assert by_pitch[48]["hand"] == 1
    assert by_pitch[43]["hand"] == 1
    assert by_pitch[76]["measure"] == 2
    assert by_pitch[76]["beat"] == 1.0
    assert by_pitch[74]["beat"] == 2.0
    assert by_pitch[76]["onset_s"] == pytest.approx(3.0)
    assert by_pitch[43]["duration_s"] == pytest.approx(0.5)
    assert by_pitch[74]["velocity_mark"] == 90


def test_io_vienna_performance_ids_agree_with_partitura() -> None:
    import partitura

    root = Path(__file__).resolve().parents[4].parent / "shared" / "eval" / "vienna4x22"
    if not root.is_dir():
        pytest.fail(f"evaluation data missing: expected {root}")
    path = root / "midi" / "Mozart_K331_1st-mov_p01.mid"
    ours = load_performance(path).notes
    theirs = partitura.load_performance_midi(str(path)).note_array()
    theirs = theirs[np.argsort([int(i[1:]) for i in theirs["id"]])]
    assert ours["id"].tolist() == theirs["id"].tolist()
    assert ours["pitch"].tolist() == theirs["pitch"].tolist()
    np.testing.assert_allclose(ours["onset_s"], theirs["onset_sec"], atol=1e-6)


def _bad_chunk_length() -> bytes:
    data = bytearray(two_hand_file())
    track = data.index(b"MTrk")
    data[track + 4 : track + 8] = (10_000_000).to_bytes(4, "big")
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"RIFF....WAVEfmt ", "not a MIDI file"),
        (b"MThd\x00\x00\x00\x06\x00", "damaged MIDI"),
        (two_hand_file()[:40], "damaged MIDI"),
        (_bad_chunk_length(), "damaged MIDI"),
        (midi_bytes([[mido.MetaMessage("end_of_track", time=0)]]), "no notes"),
    ],
)
def test_io_malformed_midi_names_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(PerformanceFormatError, match=message):
        load_performance(data)
    with pytest.raises(ScoreFormatError, match=message):
        load_score(data, "midi")


def test_io_note_still_down_at_the_end_is_closed_by_the_end_of_the_file() -> None:
    track = [
        mido.Message("note_on", note=60, velocity=64, time=0),
        mido.MetaMessage("end_of_track", time=960),
    ]
    perf = load_performance(midi_bytes([track]))
    assert perf.notes["onset_s"][0] == 0.0
    assert math.isclose(perf.notes["offset_s"][0], 1.0)
