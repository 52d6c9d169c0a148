"""A MIDI piece uploaded with its hands named per track or per channel: the stored score has
every note of the file, each in the hand its track or channel was given; a mapping that misses
a track with notes, names one without, or is given for MusicXML is refused with the reason."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import mido
import pytest
from sonata_engine import score_from_dict

sys.path.insert(0, str(Path(__file__).parent))

from db_api_support import Users
from db_takes import catalogue_bytes

pytestmark = pytest.mark.integration

BASS = [48, 52, 55, 48]  # quarter notes
MELODY = [72, 74, 76, 77, 79, 81, 83, 84]  # eighth notes


def _notes(pitches: list[int], ticks: int, channel: int = 0) -> list[mido.Message]:
    out = []
    for p in pitches:
        out.append(mido.Message("note_on", note=p, velocity=70, channel=channel, time=0))
        out.append(mido.Message("note_off", note=p, velocity=0, channel=channel, time=ticks))
    return out


def two_tracks() -> bytes:
    """Type 1: a tempo track, then the left hand's track, then the right hand's."""
    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("track_name", name="Duet for two hands", time=0),
            mido.MetaMessage("set_tempo", tempo=500_000, time=0),
            mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        ]
    )
    left = mido.MidiTrack([mido.MetaMessage("track_name", name="Left", time=0), *_notes(BASS, 480)])
    right = mido.MidiTrack(
        [mido.MetaMessage("track_name", name="Right", time=0), *_notes(MELODY, 240)]
    )
    out = io.BytesIO()
    mido.MidiFile(type=1, ticks_per_beat=480, tracks=[conductor, left, right]).save(file=out)
    return out.getvalue()


def two_channels() -> bytes:
    """Type 0: one track, the melody on channel 1 and the bass on channel 3, interleaved."""
    events: list[tuple[int, mido.Message]] = []
    for k, p in enumerate(MELODY):
        events += [(k * 240, mido.Message("note_on", note=p, velocity=70, channel=0))]
        events += [(k * 240 + 240, mido.Message("note_off", note=p, channel=0))]
    for k, p in enumerate(BASS):
        events += [(k * 480, mido.Message("note_on", note=p, velocity=60, channel=2))]
        events += [(k * 480 + 480, mido.Message("note_off", note=p, channel=2))]
    events.sort(key=lambda e: (e[0], e[1].type == "note_on"))
    track, now = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)]), 0
    for tick, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    out = io.BytesIO()
    mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track]).save(file=out)
    return out.getvalue()


async def upload(
    http: httpx.AsyncClient, teacher: dict[str, str], data: bytes, name: str, **form: Any
) -> httpx.Response:
    return await http.post("/v1/pieces", headers=teacher, files={"file": (name, data)}, data=form)


async def stored_hands(
    http: httpx.AsyncClient, teacher: dict[str, str], piece_id: str
) -> dict[int, list[str]]:
    r = await http.get(f"/v1/pieces/{piece_id}/score", headers=teacher)
    assert r.status_code == 200, r.text
    notes = score_from_dict(r.json()).notes
    names = {0: "right", 1: "left", -1: "unknown"}
    by_pitch: dict[int, list[str]] = {}
    for pitch, hand in zip(notes["pitch"].tolist(), notes["hand"].tolist(), strict=True):
        by_pitch.setdefault(pitch, []).append(names[hand])
    return by_pitch


def expected() -> dict[int, list[str]]:
    want: dict[int, list[str]] = {}
    for p in BASS:
        want.setdefault(p, []).append("left")
    for p in MELODY:
        want.setdefault(p, []).append("right")
    return want


async def test_hands_by_track_and_by_channel(http: httpx.AsyncClient, users: Users) -> None:
    _, teacher = users.new("teacher")
    hands = json.dumps({"tracks": {"2": "left", "3": "right"}})
    r = await upload(http, teacher, two_tracks(), "duet.mid", hands=hands)
    assert r.status_code == 201, r.text
    piece = r.json()
    assert (piece["source_format"], piece["title"], piece["hands"]) == (
        "midi",
        "Duet for two hands",
        ["left", "right"],
    )
    assert await stored_hands(http, teacher, piece["piece_id"]) == expected()
    # Without the mapping the file's first track with notes (here the bass) is the right hand.
    r = await upload(http, teacher, two_tracks(), "duet.mid")
    unmapped = await stored_hands(http, teacher, r.json()["piece_id"])
    assert unmapped[48] == ["right", "right"]

    hands = json.dumps({"channels": {"1": "right", "3": "left"}})
    r = await upload(http, teacher, two_channels(), "one-track.mid", hands=hands)
    assert r.status_code == 201, r.text
    assert await stored_hands(http, teacher, r.json()["piece_id"]) == expected()
    hands = json.dumps({"channels": {"1": "left", "3": "right"}})
    r = await upload(http, teacher, two_channels(), "one-track.mid", hands=hands)
    swapped = await stored_hands(http, teacher, r.json()["piece_id"])
    assert swapped[48] == ["right", "right"]
    assert swapped[84] == ["left"]


REFUSED = [
    (two_tracks, {"tracks": {"2": "left"}}, "track 3 has notes but no hand"),
    (two_tracks, {"tracks": {"1": "left", "2": "left", "3": "right"}}, "names track 1, which"),
    (two_channels, {"channels": {"1": "left"}}, "channel 3 has notes but no hand"),
    (two_channels, {"channels": {"1": "left", "3": "right", "4": "left"}}, "names channel 4"),
    (two_tracks, {"tracks": {"2": "middle"}}, "invalid_hands"),
    (two_tracks, {"tracks": {"2": "left"}, "channels": {"1": "right"}}, "either tracks or"),
    (two_tracks, {"channels": {"17": "left"}}, "invalid_hands"),
    (two_tracks, {"tracks": {}}, "at least one track"),
]


async def test_a_bad_hand_mapping_is_refused_with_its_reason(
    http: httpx.AsyncClient, users: Users
) -> None:
    _, teacher = users.new("teacher")
    for midi, hands, reason in REFUSED:
        r = await upload(http, teacher, midi(), "piece.mid", hands=json.dumps(hands))
        assert r.status_code == 422, (hands, r.text)
        assert reason in r.text, (hands, r.text)
    r = await upload(http, teacher, two_tracks(), "duet.mid", hands="{not json")
    assert r.json()["error"] == "invalid_hands"
    hands = json.dumps({"tracks": {"2": "left", "3": "right"}})
    r = await upload(http, teacher, two_tracks(), "duet.mid", hands=hands, hand_split="60")
    assert r.status_code == 422
    assert "not both" in r.text
    r = await upload(http, teacher, catalogue_bytes("ode-to-joy"), "ode.musicxml", hands=hands)
    assert r.status_code == 422
    assert "come from its staves" in r.text
    r = await http.get("/v1/pieces", params={"scope": "mine"}, headers=teacher)
    assert r.json()["total"] == 0
