"""Writes the starting catalogue (MusicXML files and catalogue.json) into sonata_db/catalogue.

The pieces are public domain; these encodings are the project's own, kept short and graded.
Run `uv run --frozen python services/db/scripts/write_catalogue.py` after changing a piece.
A note token is `PITCH:QUARTERS` (`C5:1`, `F#4:0.5`), `r:QUARTERS` a rest, `C4+E4:2` a chord.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

OUT = Path(__file__).resolve().parents[1] / "src" / "sonata_db" / "catalogue"
DIVISIONS = 4
TYPES = {4.0: ("whole", 0), 3.0: ("half", 1), 2.0: ("half", 0), 1.5: ("quarter", 1)}
TYPES |= {1.0: ("quarter", 0), 0.75: ("eighth", 1), 0.5: ("eighth", 0), 0.25: ("16th", 0)}


@dataclass
class Piece:
    slug: str
    title: str
    composer: str
    level: int
    tags: list[str]
    key: str
    fifths: int
    time: tuple[int, int]
    tempo: int
    right: list[str]  # one string of tokens per bar
    left: list[str]
    sections: dict[int, str] = field(default_factory=dict)  # first bar -> rehearsal mark


def _pitch(token: str) -> str:
    step, rest = token[0], token[1:]
    alter = {"#": 1, "b": -1}.get(rest[0], 0) if rest[:1] in ("#", "b") else 0
    octave = rest[1:] if alter else rest
    alter_xml = f"<alter>{alter}</alter>" if alter else ""
    return f"<pitch><step>{step}</step>{alter_xml}<octave>{octave}</octave></pitch>"


def _notes(bar: str, staff: int, voice: int, ids: list[int]) -> tuple[list[str], int]:
    out: list[str] = []
    total = 0
    for token in bar.split():
        pitches, quarters = token.rsplit(":", 1)
        q = float(quarters)
        kind, dots = TYPES[q]
        dur = int(q * DIVISIONS)
        total += dur
        tail = (
            f"<duration>{dur}</duration><voice>{voice}</voice><type>{kind}</type>"
            + "<dot/>" * dots
            + f"<staff>{staff}</staff>"
        )
        if pitches == "r":
            out.append(f"<note><rest/>{tail}</note>")
            continue
        for k, p in enumerate(pitches.split("+")):
            ids[0] += 1
            chord = "<chord/>" if k else ""
            out.append(f'<note id="n{ids[0]}">{chord}{_pitch(p)}{tail}</note>')
    return out, total


def musicxml(piece: Piece) -> str:
    beats, beat_type = piece.time
    ids = [0]
    measures: list[str] = []
    for k, (rh, lh) in enumerate(zip(piece.right, piece.left, strict=True), start=1):
        parts = [f'<measure number="{k}">']
        if k == 1:
            parts.append(
                f"<attributes><divisions>{DIVISIONS}</divisions>"
                f"<key><fifths>{piece.fifths}</fifths></key>"
                f"<time><beats>{beats}</beats><beat-type>{beat_type}</beat-type></time>"
                "<staves>2</staves>"
                '<clef number="1"><sign>G</sign><line>2</line></clef>'
                '<clef number="2"><sign>F</sign><line>4</line></clef></attributes>'
                '<direction placement="above"><direction-type><metronome>'
                f"<beat-unit>quarter</beat-unit><per-minute>{piece.tempo}</per-minute>"
                f'</metronome></direction-type><sound tempo="{piece.tempo}"/></direction>'
            )
        if k in piece.sections:
            parts.append(
                '<direction placement="above"><direction-type>'
                f"<rehearsal>{escape(piece.sections[k])}</rehearsal></direction-type></direction>"
            )
        right, length = _notes(rh, 1, 1, ids)
        left, _ = _notes(lh, 2, 5, ids)
        parts += [*right, f"<backup><duration>{length}</duration></backup>", *left]
        parts.append("</measure>")
        measures.append("".join(parts))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 4.0 Partwise//EN" '
        '"http://www.musicxml.org/dtds/partwise.dtd">\n'
        '<score-partwise version="4.0">'
        f"<work><work-title>{escape(piece.title)}</work-title></work>"
        "<identification>"
        f'<creator type="composer">{escape(piece.composer)}</creator>'
        "<rights>Public domain; encoded by the Sonata project</rights></identification>"
        '<part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>'
        '<part id="P1">\n' + "\n".join(measures) + "\n</part></score-partwise>\n"
    )


PIECES = [
    Piece(
        "c-major-scale",
        "C major scale, one octave",
        "Exercise",
        1,
        ["scale", "technique"],
        "C major",
        0,
        (4, 4),
        80,
        [
            "C5:1 D5:1 E5:1 F5:1",
            "G5:1 A5:1 B5:1 C6:1",
            "C6:1 B5:1 A5:1 G5:1",
            "F5:1 E5:1 D5:1 C5:1",
        ],
        [
            "C3:1 D3:1 E3:1 F3:1",
            "G3:1 A3:1 B3:1 C4:1",
            "C4:1 B3:1 A3:1 G3:1",
            "F3:1 E3:1 D3:1 C3:1",
        ],
        {1: "ascending", 3: "descending"},
    ),
    Piece(
        "twinkle-theme",
        "Twinkle, Twinkle, Little Star (theme)",
        "Traditional",
        1,
        ["folk", "beginner", "variations"],
        "C major",
        0,
        (4, 4),
        96,
        [
            "C5:1 C5:1 G5:1 G5:1",
            "A5:1 A5:1 G5:2",
            "F5:1 F5:1 E5:1 E5:1",
            "D5:1 D5:1 C5:2",
            "G5:1 G5:1 F5:1 F5:1",
            "E5:1 E5:1 D5:2",
            "G5:1 G5:1 F5:1 F5:1",
            "E5:1 E5:1 D5:2",
            "C5:1 C5:1 G5:1 G5:1",
            "A5:1 A5:1 G5:2",
            "F5:1 F5:1 E5:1 E5:1",
            "D5:1 D5:1 C5:2",
        ],
        [
            "C3+E3:4",
            "F3+A3:2 C3+E3:2",
            "D3+F3:2 C3+E3:2",
            "G3:2 C3:2",
            "C3+E3:2 D3+F3:2",
            "C3+G3:2 G3:2",
            "C3+E3:2 D3+F3:2",
            "C3+G3:2 G3:2",
            "C3+E3:4",
            "F3+A3:2 C3+E3:2",
            "D3+F3:2 C3+E3:2",
            "G3:2 C3:2",
        ],
        {1: "verse", 5: "bridge", 9: "outro"},
    ),
    Piece(
        "ode-to-joy",
        "Ode to Joy (from Symphony No. 9)",
        "Ludwig van Beethoven",
        1,
        ["classical", "beginner", "melody"],
        "C major",
        0,
        (4, 4),
        100,
        [
            "E5:1 E5:1 F5:1 G5:1",
            "G5:1 F5:1 E5:1 D5:1",
            "C5:1 C5:1 D5:1 E5:1",
            "E5:1.5 D5:0.5 D5:2",
            "E5:1 E5:1 F5:1 G5:1",
            "G5:1 F5:1 E5:1 D5:1",
            "C5:1 C5:1 D5:1 E5:1",
            "D5:1.5 C5:0.5 C5:2",
            "D5:1 D5:1 E5:1 C5:1",
            "D5:1 E5:0.5 F5:0.5 E5:1 C5:1",
            "D5:1 E5:0.5 F5:0.5 E5:1 D5:1",
            "C5:1 D5:1 G4:2",
            "E5:1 E5:1 F5:1 G5:1",
            "G5:1 F5:1 E5:1 D5:1",
            "C5:1 C5:1 D5:1 E5:1",
            "D5:1.5 C5:0.5 C5:2",
        ],
        [
            "C3:4",
            "G3:4",
            "A3:4",
            "G3:4",
            "C3:4",
            "G3:4",
            "A3:2 F3:2",
            "G3:2 C3:2",
            "G3:4",
            "C3:4",
            "G3:4",
            "C3:2 B2:2",
            "C3:4",
            "G3:4",
            "A3:2 F3:2",
            "G3:2 C3:2",
        ],
        {1: "verse", 9: "bridge", 13: "outro"},
    ),
    Piece(
        "minuet-in-g",
        "Minuet in G major, BWV Anh. 114",
        "Christian Petzold",
        2,
        ["baroque", "minuet", "intermediate"],
        "G major",
        1,
        (3, 4),
        112,
        [
            "D5:1 G4:0.5 A4:0.5 B4:0.5 C5:0.5",
            "D5:1 G4:1 G4:1",
            "E5:1 C5:0.5 D5:0.5 E5:0.5 F#5:0.5",
            "G5:1 G4:1 G4:1",
            "C5:1 D5:0.5 C5:0.5 B4:0.5 A4:0.5",
            "B4:1 C5:0.5 B4:0.5 A4:0.5 G4:0.5",
            "F#4:1 G4:0.5 A4:0.5 B4:0.5 G4:0.5",
            "A4:3",
            "D5:1 G4:0.5 A4:0.5 B4:0.5 C5:0.5",
            "D5:1 G4:1 G4:1",
            "E5:1 C5:0.5 D5:0.5 E5:0.5 F#5:0.5",
            "G5:1 G4:1 G4:1",
            "C5:1 D5:0.5 C5:0.5 B4:0.5 A4:0.5",
            "B4:1 C5:0.5 B4:0.5 A4:0.5 G4:0.5",
            "A4:1 B4:0.5 A4:0.5 G4:0.5 F#4:0.5",
            "G4:3",
        ],
        [
            "G3+B3:2 A3:1",
            "B3:3",
            "C4:3",
            "B3:3",
            "A3:3",
            "G3:3",
            "D4:1 B3:1 G3:1",
            "D4:1 D3:0.5 C4:0.5 B3:0.5 A3:0.5",
            "B3:2 A3:1",
            "G3:1 B3:1 G3:1",
            "C4:3",
            "B3:1 C4:0.5 B3:0.5 A3:0.5 G3:0.5",
            "A3:2 F#3:1",
            "G3:2 B3:1",
            "C4:1 D4:1 D3:1",
            "G3:2 G2:1",
        ],
        {1: "A", 9: "A'"},
    ),
    Piece(
        "clementi-op36-1",
        "Sonatina in C major, Op. 36 No. 1, I (excerpt)",
        "Muzio Clementi",
        3,
        ["classical", "sonatina", "intermediate"],
        "C major",
        0,
        (4, 4),
        120,
        [
            "C5:2 E5:1 C5:1",
            "G4:1 G4:1 G4:1 r:1",
            "C5:2 E5:1 C5:1",
            "G5:1 G4:1 G4:1 r:1",
            "C5:0.5 D5:0.5 E5:0.5 F5:0.5 G5:0.5 A5:0.5 G5:0.5 F5:0.5",
            "E5:0.5 F5:0.5 G5:0.5 F5:0.5 E5:0.5 D5:0.5 C5:0.5 B4:0.5",
            "C5:1 E5:1 D5:1 B4:1",
            "C5:2 r:2",
        ],
        [
            "C3:0.5 G3:0.5 E3:0.5 G3:0.5 C3:0.5 G3:0.5 E3:0.5 G3:0.5",
            "B2:0.5 G3:0.5 D3:0.5 G3:0.5 B2:0.5 G3:0.5 D3:0.5 G3:0.5",
            "C3:0.5 G3:0.5 E3:0.5 G3:0.5 C3:0.5 G3:0.5 E3:0.5 G3:0.5",
            "B2:0.5 G3:0.5 D3:0.5 G3:0.5 B2:0.5 G3:0.5 D3:0.5 G3:0.5",
            "C3+E3:2 F3+A3:2",
            "C3+G3:2 G2:2",
            "E3:1 C3:1 G3:1 G2:1",
            "C3:2 r:2",
        ],
        {1: "intro", 5: "verse"},
    ),
]
SKILL_PATH = "foundations"


def main() -> None:
    entries = []
    for order, piece in enumerate(PIECES):
        name = f"{piece.slug}.musicxml"
        (OUT / name).write_text(musicxml(piece), encoding="utf-8")
        entries.append(
            {
                "slug": piece.slug,
                "file": name,
                "level": piece.level,
                "tags": piece.tags,
                "key": piece.key,
                "skill_path": SKILL_PATH,
                "path_order": order,
            }
        )
    (OUT / "catalogue.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
