import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sonata_engine import ScoreFormatError, load_score


def eval_dir() -> Path:
    # On CI the shared evaluation data sits next to the clone: <clone>/../shared/eval.
    root = Path(__file__).resolve().parents[4]
    path = root.parent / "shared" / "eval" / "vienna4x22"
    if not path.is_dir():
        pytest.fail(f"evaluation data missing: expected {path}")
    return path


@pytest.mark.parametrize(
    "piece", ["Chopin_op10_no3", "Chopin_op38", "Mozart_K331_1st-mov", "Schubert_D783_no15"]
)
def test_io_vienna_score_ids_cover_every_match_snote(piece: str) -> None:
    data = eval_dir()
    score = load_score(data / "musicxml" / f"{piece}.musicxml")
    ids = set(score.notes["id"].tolist())
    texts = [m.read_text() for m in sorted((data / "match").glob(f"{piece}_p*.match"))]
    assert len(texts) >= 22
    wanted: set[str] = set()
    for text in texts:
        wanted |= set(re.findall(r"snote\(([^,]+),", text))
    assert len(wanted) > 300
    assert np.all(np.diff(score.notes["onset_q"]) >= 0)
    # A unison of two voices is one key press, so one note of the pair is merged into the other
    # (the longer, between equals the first voice's). The match files keep one of each pair too,
    # but chose by hand, so a few may name the other one.
    for sid in wanted - ids:
        assert _unison_partner(data / "musicxml" / f"{piece}.musicxml", sid) in ids
    assert len(wanted - ids) <= 2


def _unison_partner(path: Path, sid: str) -> str:
    import partitura

    raw = partitura.load_musicxml(str(path), quiet=True).parts[0].note_array()
    me = raw[raw["id"] == sid][0]
    same = raw[(raw["pitch"] == me["pitch"]) & (raw["onset_div"] == me["onset_div"])]
    (other,) = [str(i) for i in same["id"] if i != sid]
    return other


def test_io_unison_of_two_voices_is_one_note() -> None:
    score = load_score(eval_dir() / "musicxml" / "Chopin_op10_no3.musicxml")
    ids = set(score.notes["id"].tolist())
    # The file doubles 32 bass notes in a second voice ("n4voice_overlap" beside "n4").
    assert len(score.notes) == 486 - 32
    assert "n4" in ids
    # the doubling never takes the written note's id, even where both last as long
    assert not any(i.endswith("voice_overlap") for i in ids)
    assert {"n411", "n431"} <= ids
    n4 = score.notes[score.notes["id"] == "n4"][0]
    assert n4["duration_q"] == 1.0  # the longer of the two


HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <work><work-title>Little Piece</work-title></work>
  <part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
  <part id="P1">
"""


def note(pitch: str, octave: int, dur: int, staff: int, voice: int, extra: str = "") -> str:
    return (
        f"<note>{extra}<pitch><step>{pitch}</step><octave>{octave}</octave></pitch>"
        f"<duration>{dur}</duration><voice>{voice}</voice><type>quarter</type>"
        f"<staff>{staff}</staff></note>"
    )


def grace(pitch: str, octave: int) -> str:
    return (
        f'<note><grace slash="yes"/><pitch><step>{pitch}</step><octave>{octave}</octave></pitch>'
        "<voice>1</voice><type>eighth</type><staff>1</staff></note>"
    )


BACKUP4 = "<backup><duration>4</duration></backup>"
TIE_START = '<tie type="start"/>'
TIE_STOP = '<tie type="stop"/>'

SMALL = (
    HEAD
    + """<measure number="1">
  <attributes><divisions>1</divisions><time><beats>2</beats><beat-type>4</beat-type></time>
    <staves>2</staves></attributes>
  <direction placement="above"><direction-type><rehearsal>A</rehearsal></direction-type>
    <staff>1</staff></direction>
  <direction placement="below"><direction-type><dynamics><p/></dynamics></direction-type>
    <staff>1</staff></direction>
  <direction><direction-type><metronome><beat-unit>quarter</beat-unit>
    <per-minute>60</per-minute></metronome></direction-type><sound tempo="60"/></direction>
"""
    + grace("D", 5)
    + note("C", 5, 1, 1, 1)
    + note("E", 5, 1, 1, 1, TIE_START)
    + "<backup><duration>2</duration></backup>"
    + note("C", 3, 2, 2, 5)
    + """</measure>
<measure number="2">
  <direction placement="above"><direction-type><rehearsal>B</rehearsal></direction-type>
    <staff>1</staff></direction>
  <direction placement="below"><direction-type><dynamics><f/></dynamics></direction-type>
    <staff>1</staff></direction>
"""
    + note("E", 5, 1, 1, 1, TIE_STOP)
    + note("F", 5, 1, 1, 1)
    + "<backup><duration>2</duration></backup>"
    + note("G", 2, 2, 2, 5)
    + """</measure>
<measure number="3">
  <barline location="left"><repeat direction="forward"/></barline>
"""
    + note("G", 5, 1, 1, 1)
    + note("A", 5, 1, 1, 1)
    + "<backup><duration>2</duration></backup>"
    + note("C", 3, 2, 2, 5)
    + """<barline location="right"><repeat direction="backward"/></barline>
</measure>
</part></score-partwise>
"""
)


def test_io_small_musicxml_gives_the_expected_notes() -> None:
    score = load_score(SMALL.encode(), "musicxml")
    n = score.notes
    assert score.title == "Little Piece"
    assert [m.number for m in score.measures] == [1, 2, 3, 3]  # bar 3 is repeated
    assert [(m.start_q, m.end_q, m.beats, m.beat_type) for m in score.measures][3] == (
        6.0,
        8.0,
        2,
        4,
    )
    assert len(n) == 12
    # The tied E5 is one note of two quarters; the grace note has no duration.
    tied = n[n["pitch"] == 76]
    assert len(tied) == 1
    assert tied[0]["duration_q"] == 2.0
    assert tied[0]["onset_q"] == 1.0
    graces = n[n["is_grace"]]
    assert len(graces) == 1
    assert graces[0]["pitch"] == 74
    assert graces[0]["duration_q"] == 0.0
    # Unfolded repeat: bar 3 is played twice, its notes with -1 / -2 suffixed ids.
    g5 = n[n["pitch"] == 79]
    assert list(g5["onset_q"]) == [4.0, 6.0]
    assert [s.rsplit("-", 1)[1] for s in g5["id"].tolist()] == ["1", "2"]
    assert len({s.rsplit("-", 1)[0] for s in g5["id"].tolist()}) == 1
    assert list(g5["measure_index"]) == [2, 3]
    assert list(g5["measure"]) == [3, 3]
    assert list(g5["beat"]) == [1.0, 1.0]
    assert list(n["beat"][n["pitch"] == 81]) == [2.0, 2.0]
    # Staves as hands; the p and f marks on staff 1 speak for both hands.
    assert set(n["hand"][n["pitch"] >= 72].tolist()) == {0}
    assert set(n["hand"][n["pitch"] < 60].tolist()) == {1}
    c3 = n[(n["pitch"] == 48) & (n["measure"] == 1)][0]
    assert c3["velocity_mark"] == 48
    assert c3["staff"] == 2
    assert set(n["velocity_mark"][n["measure"] >= 2].tolist()) == {80}
    # 60 bpm: seconds equal quarters.
    np.testing.assert_allclose(n["onset_s"], n["onset_q"])
    assert score.tempo_marks[0].bpm == pytest.approx(60.0)
    assert [(s.name, s.first_measure_index, s.last_measure_index) for s in score.sections] == [
        ("A", 0, 0),
        ("B", 1, 3),
    ]


def test_io_mxl_archive_reads_like_the_plain_file(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container><rootfiles>'
            '<rootfile full-path="piece.xml"/></rootfiles></container>',
        )
        zf.writestr("piece.xml", SMALL)
    path = tmp_path / "piece.mxl"
    path.write_bytes(buf.getvalue())
    plain = load_score(SMALL.encode())
    packed = load_score(path)
    assert packed.notes.tobytes() == plain.notes.tobytes()


def test_io_score_without_tempo_runs_at_120_bpm() -> None:
    xml = SMALL.replace('<sound tempo="60"/>', "").replace(
        "<metronome><beat-unit>quarter</beat-unit>\n    <per-minute>60</per-minute></metronome>",
        "<words>dolce</words>",
    )
    n = load_score(xml.encode()).notes
    np.testing.assert_allclose(n["onset_s"], n["onset_q"] * 0.5)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not xml at all", "not well-formed XML"),
        (SMALL.encode()[: len(SMALL) // 2], "not well-formed XML"),
        (b'<?xml version="1.0"?><html><body/></html>', "root element is <html>"),
        (b"<score-timewise/>", "score-timewise"),
        (
            HEAD.encode() + b'<measure number="1"><attributes><divisions>1</divisions>'
            b"</attributes><note><rest/><duration>4</duration></note></measure>"
            b"</part></score-partwise>",
            "no pitched notes",
        ),
        (b"PK\x03\x04garbage", "damaged"),
    ],
)
def test_io_malformed_musicxml_names_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(ScoreFormatError, match=message):
        load_score(data, "musicxml")


def test_io_missing_file_is_a_score_error(tmp_path: Path) -> None:
    with pytest.raises(ScoreFormatError, match="cannot read"):
        load_score(tmp_path / "nope.musicxml")


def test_io_without_rehearsal_marks_sections_follow_the_repeats() -> None:
    xml = SMALL.replace("<rehearsal>A</rehearsal>", "<words>dolce</words>").replace(
        "<rehearsal>B</rehearsal>", "<words>cantabile</words>"
    )
    sections = load_score(xml.encode()).sections
    assert [(s.name, s.first_measure_index, s.last_measure_index) for s in sections] == [
        ("bars 1-2", 0, 1),
        ("bars 3-3", 2, 2),
        ("bars 3-3", 3, 3),
    ]


def test_io_vienna_piece_without_structure_has_no_sections() -> None:
    score = load_score(eval_dir() / "musicxml" / "Chopin_op10_no3.musicxml")
    assert len(score.measures) == 22
    assert score.sections == []


def test_io_two_single_staff_parts_are_read_as_the_two_hands() -> None:
    def part(pid: str, step: str, octave: int) -> str:
        return (
            f'<part id="{pid}"><measure number="1"><attributes><divisions>1</divisions>'
            "<time><beats>2</beats><beat-type>4</beat-type></time></attributes>"
            + note(step, octave, 1, 1, 1)
            + note(step, octave, 1, 1, 1)
            + "</measure></part>"
        )

    xml = (
        '<?xml version="1.0"?><score-partwise version="3.1"><part-list>'
        '<score-part id="P1"><part-name>Upper</part-name></score-part>'
        '<score-part id="P2"><part-name>Lower</part-name></score-part></part-list>'
        + part("P1", "E", 5)
        + part("P2", "C", 3)
        + "</score-partwise>"
    )
    n = load_score(xml.encode()).notes
    assert len(n) == 4
    assert len(set(n["id"].tolist())) == 4
    assert n["hand"][n["pitch"] == 76].tolist() == [0, 0]
    assert n["hand"][n["pitch"] == 48].tolist() == [1, 1]
    assert n["staff"][n["pitch"] == 48].tolist() == [2, 2]
