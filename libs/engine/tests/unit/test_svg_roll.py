import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from sonata_engine import (
    PERF_NOTE_DTYPE,
    SCORE_NOTE_DTYPE,
    AlignmentResult,
    Measure,
    Performance,
    Score,
    SessionOptions,
    build_report,
)
from sonata_engine.svg import COLOURS, piano_roll_svg

NS = "{http://www.w3.org/2000/svg}"


def take() -> tuple[Score, Performance, AlignmentResult]:
    notes = np.zeros(4, dtype=SCORE_NOTE_DTYPE)
    for k, pitch in enumerate([60, 62, 64, 65]):
        notes[k] = (
            f"s{k}",
            pitch,
            k,
            1.0,
            k * 0.5,
            0.5,
            k // 2 + 1,
            k // 2,
            k % 2 + 1,
            0,
            1,
            1,
            False,
            64,
        )
    score = Score(notes=notes, measures=[Measure(0, 1, 0, 2, 2, 4), Measure(1, 2, 2, 4, 2, 4)])
    score.title = "Scale <&> test"
    perf = np.zeros(4, dtype=PERF_NOTE_DTYPE)
    perf[0] = ("p0", 60, 1.0, 1.4, 60, 0)
    perf[1] = ("p1", 63, 1.5, 1.9, 60, 0)  # meant 62
    perf[2] = ("p2", 70, 1.7, 1.8, 60, 0)  # extra
    perf[3] = ("p3", 65, 2.5, np.nan, 60, 0)  # still held; 64 was skipped
    alignment = AlignmentResult([("s0", "p0"), ("s3", "p3")], [("s1", "p1")], ["p2"], ["s2"])
    return score, Performance(perf), alignment


def test_svg_piano_roll_is_valid_xml_with_every_note_coloured(tmp_path: Path) -> None:
    score, perf, alignment = take()
    report = build_report(score, perf, alignment, SessionOptions())
    text = piano_roll_svg(score, perf, report)
    (tmp_path / "roll.svg").write_text(text)
    root = ET.parse(tmp_path / "roll.svg").getroot()
    assert root.tag == f"{NS}svg"
    assert root.findtext(f"{NS}title") == "Scale <&> test - piano roll"
    outlines = root.findall(f"{NS}g[@class='score']/{NS}rect")
    filled = root.findall(f"{NS}g[@class='performance']/{NS}rect")
    assert sorted(r.get("stroke") for r in outlines) == sorted(
        [COLOURS["correct"]] * 2 + [COLOURS["wrong_pitch"], COLOURS["missed"]]
    )
    assert sorted(r.get("fill") for r in filled) == sorted(
        [COLOURS["correct"]] * 2 + [COLOURS["wrong_pitch"], COLOURS["extra"]]
    )
    # One timing line per pair that has both a score and a performed note.
    assert len(root.findall(f"{NS}g[@class='timing']/{NS}line")) == 3
    bar_numbers = [t.text for t in root.findall(f"{NS}g[@class='bars']/{NS}text")]
    assert bar_numbers == ["1", "2"]
    legend = [t.text for t in root.findall(f"{NS}g[@class='legend']/{NS}text")]
    assert {"correct", "wrong pitch", "extra", "missed"} <= set(legend)


def test_svg_later_notes_sit_further_right_and_higher_pitches_higher() -> None:
    score, perf, alignment = take()
    report = build_report(score, perf, alignment, SessionOptions())
    root = ET.fromstring(piano_roll_svg(score, perf, report))
    filled = root.findall(f"{NS}g[@class='performance']/{NS}rect")
    by_id = {r.findtext(f"{NS}title").split()[0]: r for r in filled}
    x = {k: float(r.get("x")) for k, r in by_id.items()}
    y = {k: float(r.get("y")) for k, r in by_id.items()}
    assert x["p0"] < x["p1"] < x["p2"] < x["p3"]
    assert y["p2"] < y["p3"] < y["p0"]  # SVG y grows downwards
