import io
import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sonata_engine.cli import main

PIECE = "Schubert_D783_no15"


def vienna() -> Path:
    root = Path(__file__).resolve().parents[4].parent / "shared" / "eval" / "vienna4x22"
    if not root.is_dir():
        pytest.fail(f"evaluation data missing: expected {root}")
    return root


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "sonata-engine"
    return subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_score_prints_a_report_and_writes_json_and_svg(tmp_path: Path) -> None:
    data = vienna()
    out_json, out_svg = tmp_path / "report.json", tmp_path / "roll.svg"
    done = run(
        "score",
        data / "musicxml" / f"{PIECE}.musicxml",
        data / "midi" / f"{PIECE}_p01.mid",
        "--json",
        out_json,
        "--svg",
        out_svg,
        "--strictness",
        "0.7",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("overall ")
    assert any(line.startswith("subscores  notes ") for line in lines)
    bar_rows = [line for line in lines if line[:3].strip().isdigit()]
    assert len(bar_rows) == 33
    report = json.loads(out_json.read_text())
    assert report["summary"]["expected"] == 328
    assert report["summary"]["correct"] >= 300  # a concert pianist's take
    assert report["options"]["strictness"] == 0.7
    assert ET.parse(out_svg).getroot().tag.endswith("svg")


def test_cli_score_respects_hands_and_bars(tmp_path: Path) -> None:
    data = vienna()
    out_json = tmp_path / "r.json"
    argv = ["score", str(data / "musicxml" / f"{PIECE}.musicxml")]
    argv += [str(data / "midi" / f"{PIECE}_p01.mid"), "--hands", "right", "--bars", "3-6"]
    assert main([*argv, "--json", str(out_json)], out=io.StringIO()) == 0
    report = json.loads(out_json.read_text())
    assert [b["number"] for b in report["bars"]] == [3, 4, 5, 6]
    assert all(b["left_expected"] == 0 for b in report["bars"])


def test_cli_replay_prints_live_judgements_as_they_happen() -> None:
    data = vienna()
    out = io.StringIO()
    argv = ["replay", str(data / "musicxml" / f"{PIECE}.musicxml")]
    # The take lasts about 35 s: at 40 times real speed the replay takes about a second.
    argv += [str(data / "midi" / f"{PIECE}_p01.mid"), "--speed", "40"]
    started = time.monotonic()
    assert main(argv, out=out) == 0
    assert time.monotonic() - started > 35 / 40
    lines = out.getvalue().splitlines()
    live = [line for line in lines if re.match(r"\s*\d+\.\d{3}s  ", line)]
    assert sum(" correct " in line for line in live) >= 300
    times = [float(line.split("s", 1)[0]) for line in live]
    assert times == sorted(times)
    assert any(line.startswith("overall ") for line in lines)


def test_cli_bad_files_give_clear_messages_and_exit_codes(tmp_path: Path) -> None:
    data = vienna()
    junk = tmp_path / "junk.musicxml"
    junk.write_text("not a score")
    done = run("score", junk, data / "midi" / f"{PIECE}_p01.mid")
    assert done.returncode == 3
    assert "cannot read the piece" in done.stderr
    assert "not well-formed XML" in done.stderr
    assert "Traceback" not in done.stderr
    bad_midi = tmp_path / "take.mid"
    bad_midi.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    # A MIDI file serves as the piece here: it reads without partitura, so the check is quick.
    done = run("score", data / "midi" / f"{PIECE}_p02.mid", bad_midi)
    assert done.returncode == 4
    assert "cannot read the performance" in done.stderr
    assert "damaged MIDI" in done.stderr
    done = run("score", junk, bad_midi, "--bars", "9-2")
    assert done.returncode == 2
    assert "runs backwards" in done.stderr
