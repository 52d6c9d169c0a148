"""MusicXML (.musicxml, .xml, compressed .mxl) -> Score, through partitura.

Hands: a piano part written on two staves gives staff 1 to the right hand and staff 2 to the
left. A score split into parts (one staff each, or several staves) is read as one piano: every
(part, staff) pair in score order is a stave; with exactly two staves the upper one is the right
hand and the lower the left; with more, a stave whose mean pitch is at or above middle C is the
right hand's and the others the left's; a single stave leaves the hand unknown (-1), which every
hand option then includes.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from lxml import etree

from sonata_engine.errors import ScoreFormatError
from sonata_engine.io._common import DEFAULT_VELOCITY, DYNAMIC_VELOCITY, make_notes
from sonata_engine.types import DynamicMark, Measure, Score, Section, TempoMark

_FORTE_VELOCITY = 90  # <sound dynamics="N"> is N percent of MIDI 1.0's forte


def musicxml_bytes(data: bytes) -> bytes:
    """The MusicXML document inside ``data`` (unzipping a compressed .mxl)."""
    if not data.strip():
        raise ScoreFormatError("the MusicXML file is empty")
    if data[:4] != b"PK\x03\x04":
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            root_name = None
            if "META-INF/container.xml" in names:
                container = etree.fromstring(zf.read("META-INF/container.xml"), _parser())
                rootfile = container.find(".//{*}rootfile")
                if rootfile is not None:
                    root_name = rootfile.get("full-path")
            if root_name is None:
                candidates = [
                    n for n in names if not n.startswith("META-INF/") and n.endswith("xml")
                ]
                if not candidates:
                    raise ScoreFormatError("the .mxl archive holds no MusicXML document")
                root_name = candidates[0]
            return zf.read(root_name)
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError, EOFError) as exc:
        raise ScoreFormatError(f"the .mxl archive is damaged: {exc}") from exc


def load_musicxml(data: bytes) -> Score:
    xml = musicxml_bytes(data)
    try:
        root = etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as exc:
        raise ScoreFormatError(f"not well-formed XML: {exc}") from exc
    tag = etree.QName(root).localname
    if tag == "score-timewise":
        raise ScoreFormatError("score-timewise MusicXML is not supported: save it as partwise")
    if tag != "score-partwise":
        raise ScoreFormatError(f"not MusicXML: the root element is <{tag}>, not <score-partwise>")
    if root.find(".//note/pitch") is None:
        raise ScoreFormatError("the MusicXML has no pitched notes")
    rehearsals = _rehearsal_marks(root)
    boundaries = _structure_starts(root)
    # partitura takes seconds to import; only reading a MusicXML piece pays for it.
    import partitura

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = partitura.load_musicxml(io.BytesIO(xml), force_note_ids="keep", quiet=True)
            parts = [_unfold(p) for p in partitura.score.iter_parts(doc.parts)]
    except ScoreFormatError:
        raise
    except Exception as exc:
        raise ScoreFormatError(f"MusicXML could not be read: {type(exc).__name__}: {exc}") from exc
    parts = [p for p in parts if len(p.notes_tied) > 0]
    if not parts:
        raise ScoreFormatError("the MusicXML has no pitched notes")
    score = _to_score(parts, rehearsals, title=_title(root, doc), composer=doc.composer or "")
    if not score.sections:
        score.sections = _structural_sections(score.measures, boundaries)
    return score


def _parser() -> etree.XMLParser:
    # Entities stay unresolved and nothing is fetched: a score file is untrusted input.
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _title(root: Any, doc: Any) -> str:
    for path in ("work/work-title", "movement-title"):
        text = root.findtext(path)
        if text and text.strip():
            return str(text.strip())
    return str(doc.title or "")


def _rehearsal_marks(root: Any) -> list[tuple[str, str]]:
    """(printed measure number, text) of each rehearsal mark in the first part."""
    part = root.find("part")
    if part is None:
        return []
    out = []
    for measure in part.iter("measure"):
        for mark in measure.iter("rehearsal"):
            if mark.text and mark.text.strip():
                out.append((measure.get("number", ""), mark.text.strip()))
    return out


def _structure_starts(root: Any) -> set[str]:
    """Printed numbers of bars that open a passage: after a double or final barline or a
    backward repeat, or at a forward repeat (first part only)."""
    part = root.find("part")
    if part is None:
        return set()
    starts: set[str] = set()
    open_next = False
    for measure in part.iter("measure"):
        number = measure.get("number", "")
        if open_next:
            starts.add(number)
            open_next = False
        for barline in measure.iter("barline"):
            style = barline.findtext("bar-style") or ""
            repeat = barline.find("repeat")
            direction = repeat.get("direction") if repeat is not None else None
            if barline.get("location", "right") == "left" and direction == "forward":
                starts.add(number)
            elif barline.get("location", "right") == "right" and (
                direction == "backward" or style in ("light-light", "light-heavy")
            ):
                open_next = True
    return starts


def _structural_sections(measures: list[Measure], starts: set[str]) -> list[Section]:
    """Passages between repeats and double bars, in played order, named by their bars; a jump
    back in bar numbers (an unfolded repeat) also opens one. One passage is no structure."""
    if not measures:
        return []
    first_of: list[int] = [0]
    for k in range(1, len(measures)):
        prev, cur = measures[k - 1], measures[k]
        if str(cur.number) in starts or cur.number <= prev.number:
            first_of.append(k)
    if len(first_of) < 2:
        return []
    out = []
    for j, first in enumerate(first_of):
        last = first_of[j + 1] - 1 if j + 1 < len(first_of) else len(measures) - 1
        name = f"bars {measures[first].number}-{measures[last].number}"
        out.append(Section(name, measures[first].index, measures[last].index))
    return out


def _unfold(part: Any) -> Any:
    # Only a part with repeat structure is unfolded: unfolding always suffixes ids ("-1"), and
    # a piece without repeats must keep its source ids (match files refer to them).
    import partitura.score as pts

    structure = (pts.Repeat, pts.DaCapo, pts.DalSegno, pts.Fine, pts.Segno, pts.Coda, pts.ToCoda)
    if any(next(iter(part.iter_all(cls)), None) is not None for cls in structure):
        return pts.unfold_part_maximal(part, update_ids=True)
    return part


@dataclass
class _Stave:
    part: int
    staff: int
    rows: np.ndarray


def _to_score(
    parts: list[Any], rehearsals: list[tuple[str, str]], title: str, composer: str
) -> Score:
    first = parts[0]
    origin = _measures_origin(first)
    measures = _measures(first, origin)
    if not measures:
        raise ScoreFormatError("the MusicXML has no measures")
    tempo_marks = _tempo_marks(first, origin)
    dynamics = [d for i, p in enumerate(parts) for d in _dynamics(p, origin, i)]
    staves: list[_Stave] = []
    for i, part in enumerate(parts):
        na = part.note_array(include_staff=True, include_grace_notes=True)
        for staff in np.unique(na["staff"]):
            staves.append(_Stave(i, int(staff), na[na["staff"] == staff]))
    hands = _hands(staves)
    rows = np.concatenate([s.rows for s in staves])
    onset_q = rows["onset_quarter"].astype(np.float64) - origin
    part_of = np.concatenate([np.full(len(s.rows), s.part) for s in staves])
    staff_no = np.concatenate([np.full(len(s.rows), k + 1) for k, s in enumerate(staves)])
    if len(parts) == 1:
        staff_no = rows["staff"]
    velocity = _velocity_marks(onset_q, part_of, rows["staff"], dynamics)
    notes = make_notes(
        ids=[str(x) for x in rows["id"]],
        pitch=rows["pitch"],
        onset_q=onset_q,
        duration_q=np.where(rows["is_grace"], 0.0, rows["duration_quarter"]).astype(np.float64),
        staff=staff_no,
        hand=np.concatenate([np.full(len(s.rows), h) for s, h in zip(staves, hands, strict=True)]),
        voice=rows["voice"],
        is_grace=rows["is_grace"],
        velocity_mark=velocity,
        measures=measures,
        tempo_marks=tempo_marks,
    )
    ids, counts = np.unique(notes["id"], return_counts=True)
    if (counts > 1).any():
        raise ScoreFormatError(f"note id {ids[counts > 1][0]!r} is used by more than one note")
    return Score(
        notes=notes,
        measures=measures,
        sections=_sections(measures, rehearsals),
        tempo_marks=tempo_marks,
        dynamics=[DynamicMark(d.onset_q, d.marking, d.velocity, d.staff) for d, _ in dynamics],
        title=title,
        composer=composer,
    )


def _measures_origin(part: Any) -> float:
    import partitura.score as pts

    ms = list(part.iter_all(pts.Measure))
    qmap = part.quarter_map
    return float(qmap(ms[0].start.t)) if ms else 0.0


def _measures(part: Any, origin: float) -> list[Measure]:
    import partitura.score as pts

    qmap = part.quarter_map
    tsmap = part.time_signature_map
    out = []
    for k, m in enumerate(part.iter_all(pts.Measure)):
        beats, beat_type = (int(x) for x in tsmap(m.start.t)[:2])
        number = _printed_number(m.name, fallback=m.number if isinstance(m.number, int) else k + 1)
        out.append(
            Measure(
                index=k,
                number=int(number),
                start_q=float(qmap(m.start.t)) - origin,
                end_q=float(qmap(m.end.t)) - origin,
                beats=beats,
                beat_type=beat_type,
            )
        )
    return out


def _printed_number(name: object, fallback: int) -> int:
    # The printed number is a string ("12", "12a", "X1"); its leading digits are the bar's number.
    digits = ""
    for ch in str(name or "").strip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else fallback


def _tempo_marks(part: Any, origin: float) -> list[TempoMark]:
    import partitura.score as pts

    qmap = part.quarter_map
    marks: dict[float, TempoMark] = {}
    for t in part.iter_all(pts.Tempo):
        onset = float(qmap(t.start.t)) - origin
        bpm = 60e6 / t.microseconds_per_quarter
        marks[onset] = TempoMark(onset, bpm, f"{t.unit or 'q'}={t.bpm:g}")
    return [marks[k] for k in sorted(marks)]


def _dynamics(part: Any, origin: float, part_no: int) -> list[tuple[DynamicMark, int]]:
    """(mark, part index) for each printed dynamic, or <sound dynamics> where none is printed."""
    import partitura.score as pts

    qmap = part.quarter_map
    out: list[tuple[DynamicMark, int]] = []
    printed: set[float] = set()
    for d in part.iter_all(pts.ConstantLoudnessDirection):
        velocity = DYNAMIC_VELOCITY.get(str(d.text))
        if velocity is None:
            continue
        onset = float(qmap(d.start.t)) - origin
        printed.add(onset)
        out.append((DynamicMark(onset, str(d.text), velocity, int(d.staff or -1)), part_no))
    for d in part.iter_all(pts.Dynamic):
        onset = float(qmap(d.start.t)) - origin
        if onset not in printed:
            velocity = round(min(127.0, float(d.velocity) * _FORTE_VELOCITY / 100.0))
            out.append((DynamicMark(onset, "sound", velocity), part_no))
    out.sort(key=lambda x: x[0].onset_q)
    return out


def _velocity_marks(
    onset_q: np.ndarray,
    part_of: np.ndarray,
    staff: np.ndarray,
    dynamics: list[tuple[DynamicMark, int]],
) -> np.ndarray:
    """The velocity of the dynamic in force at each note: its part's, staff-specific or not."""
    velocity = np.full(len(onset_q), DEFAULT_VELOCITY, dtype=np.int16)
    # A mark printed on one staff of a piano part usually speaks for both hands: it covers the
    # part's other staves unless those carry dynamics of their own.
    own = {(p, m.staff) for m, p in dynamics if m.staff > 0}
    for mark, part_no in dynamics:  # sorted by onset: later marks overwrite earlier ones
        hit = (part_of == part_no) & (onset_q >= mark.onset_q - 1e-9)
        if mark.staff > 0:
            others = [s for p, s in own if p == part_no and s != mark.staff]
            hit &= (staff == mark.staff) | ~np.isin(staff, [mark.staff, *others])
        velocity[hit] = mark.velocity
    return velocity


def _hands(staves: list[_Stave]) -> list[int]:
    if len(staves) == 1:
        return [-1]
    if len(staves) == 2:
        return [0, 1]
    return [0 if float(np.mean(s.rows["pitch"])) >= 60 else 1 for s in staves]


def _sections(measures: list[Measure], rehearsals: list[tuple[str, str]]) -> list[Section]:
    """Sections from rehearsal marks (each from its bar to the next mark), in played order."""
    if not rehearsals:
        return []
    names = dict(rehearsals)
    starts = [(m.index, names[str(m.number)]) for m in measures if str(m.number) in names]
    out = []
    for k, (first, name) in enumerate(starts):
        last = starts[k + 1][0] - 1 if k + 1 < len(starts) else measures[-1].index
        if last >= first:
            out.append(Section(name, first, last))
    return out
