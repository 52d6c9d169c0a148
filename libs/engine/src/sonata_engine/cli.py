"""``sonata-engine``: score a performance file against a piece, or replay it live.

Exit codes: 0 done, 2 bad arguments, 3 the piece could not be read, 4 the performance could
not be read, 5 any other engine error, 6 an output file could not be written. The wall clock
lives here: ``replay`` sleeps between events and hands the engine each event's own timestamp.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from sonata_engine.errors import EngineError, PerformanceFormatError, ScoreFormatError
from sonata_engine.io import load_performance, load_score
from sonata_engine.io.stream import SUSTAIN_CC
from sonata_engine.live import LiveSession
from sonata_engine.offline import align_offline
from sonata_engine.report import Report, build_report
from sonata_engine.report.reasons import pitch_name
from sonata_engine.svg import piano_roll_svg
from sonata_engine.types import Judgement, Performance, SessionOptions

EXIT_SCORE, EXIT_PERFORMANCE, EXIT_ENGINE, EXIT_OUTPUT = 3, 4, 5, 6


def _bars(text: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    try:
        a, b = int(first), int(last if sep else first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bars must look like 5-12, got {text!r}") from None
    if a > b:
        raise argparse.ArgumentTypeError(f"bar range {text!r} runs backwards")
    return a, b


def _unit(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("strictness is between 0 and 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="sonata-engine",
        description="Score a piano performance against its piece, or replay it live.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for name, text in (
        ("score", "score a performance MIDI file against a piece, print the report"),
        ("replay", "replay a performance at real speed, printing each live judgement"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("piece", type=Path, help="MusicXML (.musicxml, .xml, .mxl) or MIDI file")
        p.add_argument("performance", type=Path, help="MIDI file of the performance")
        p.add_argument("--hands", choices=["both", "right", "left"], default="both")
        p.add_argument("--bars", type=_bars, help="printed bar range, e.g. 5-12")
        p.add_argument("--tempo", type=_positive, default=100.0, help="practice tempo, percent")
        p.add_argument("--mode", choices=["performance", "wait"], default="performance")
        p.add_argument("--strictness", type=_unit, default=0.5, help="0 lenient .. 1 strict")
        if name == "score":
            p.add_argument("--json", type=Path, help="write the full report as JSON here")
            p.add_argument("--svg", type=Path, help="write a piano-roll SVG here")
        else:
            p.add_argument("--speed", type=_positive, default=1.0, help="2 plays twice as fast")
    return ap


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    stdout = out or sys.stdout
    args = parser().parse_args(argv)
    options = SessionOptions(
        hands=args.hands,
        first_bar=args.bars[0] if args.bars else None,
        last_bar=args.bars[1] if args.bars else None,
        tempo_percent=args.tempo,
        mode=args.mode,
        strictness=args.strictness,
    )
    try:
        score = load_score(args.piece)
    except ScoreFormatError as exc:
        print(f"sonata-engine: cannot read the piece {args.piece}: {exc}", file=sys.stderr)
        return EXIT_SCORE
    try:
        performance = load_performance(args.performance)
    except PerformanceFormatError as exc:
        print(
            f"sonata-engine: cannot read the performance {args.performance}: {exc}",
            file=sys.stderr,
        )
        return EXIT_PERFORMANCE
    try:
        if args.command == "replay":
            report = replay(score, performance, options, args.speed, stdout)
        else:
            alignment = align_offline(score, performance, options)
            report = build_report(score, performance, alignment, options)
    except EngineError as exc:
        print(f"sonata-engine: {exc}", file=sys.stderr)
        return EXIT_ENGINE
    print_report(report, stdout, title=score.title or args.piece.stem)
    if args.command == "score":
        try:
            if args.json:
                args.json.write_text(json.dumps(report.to_dict(), indent=1))
            if args.svg:
                args.svg.write_text(piano_roll_svg(score, performance, report))
        except OSError as exc:
            print(f"sonata-engine: cannot write output: {exc}", file=sys.stderr)
            return EXIT_OUTPUT
    return 0


def _events(performance: Performance) -> list[tuple[float, int, dict[str, Any]]]:
    """The performance as timed calls to a live session; at equal times offs go before ons."""
    events: list[tuple[float, int, dict[str, Any]]] = []
    for note in performance.notes:
        pitch, onset = int(note["pitch"]), float(note["onset_s"])
        on = {"pitch": pitch, "velocity": int(note["velocity"]), "note_id": str(note["id"])}
        events.append((onset, 1, on))
        if math.isfinite(note["offset_s"]):
            events.append((float(note["offset_s"]), 0, {"pitch": pitch}))
    events += [(p.time_s, 0, {"cc": SUSTAIN_CC, "value": p.value}) for p in performance.pedal]
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def replay(
    score: Any, performance: Performance, options: SessionOptions, speed: float, out: TextIO
) -> Report:
    session = LiveSession(score, options)
    events = _events(performance)
    start = time.monotonic()
    first = events[0][0] if events else 0.0
    for t, _, args in events:
        delay = (t - first) / speed - (time.monotonic() - start)
        if delay > 0:
            time.sleep(delay)
        if "cc" in args:
            session.pedal(t, args["value"])
            continue
        said = session.note_on(t, **args) if "velocity" in args else session.note_off(t, **args)
        for j in said:
            print(format_judgement(j), file=out, flush=True)
    return session.finish()


def format_judgement(j: Judgement) -> str:
    where = f"bar {j.position.measure} beat {j.position.beat:.2f}" if j.position else "-"
    played = pitch_name(j.pitch) if j.pitch is not None else "-"
    expected = pitch_name(j.expected_pitch) if j.expected_pitch is not None else "-"
    timing = f"{j.timing_ms:+5.0f} ms {j.timing}" if j.timing_ms is not None else j.timing
    tempo = f"{j.tempo_bpm:5.1f} bpm" if j.tempo_bpm else ""
    return (
        f"{j.time_s:8.3f}s  {j.kind:<11} {played:>4} / {expected:<4} {where:<18} "
        f"{timing:<20} {tempo}"
    ).rstrip()


def print_report(report: Report, out: TextIO, title: str = "") -> None:
    s = report.summary
    w = out.write
    w(f"{title}\n" if title else "")
    w(
        f"overall {report.overall:.1f}/100   notes {s['correct']}/{s['expected']} correct, "
        f"{s['wrong_pitch']} wrong, {s['missed']} missed, {s['extra']} extra   "
        f"tempo {s['tempo_bpm']:.0f} bpm\n"
    )
    w(
        "subscores  "
        + "  ".join(f"{k} {'-' if v is None else f'{v:.0f}'}" for k, v in report.subscores.items())
        + "\n"
    )
    if report.findings:
        w("findings\n")
        for f in report.findings:
            w(f"  - {f.text}\n")
    w("bar  expected correct wrong missed extra  timing_ms  tempo  velocity  articulation\n")
    for b in report.bars:
        timing = f"{b['timing_ms']:+7.0f}" if math.isfinite(b["timing_ms"]) else "      -"
        tempo = f"{b['tempo_bpm']:5.0f}" if math.isfinite(b["tempo_bpm"]) else "    -"
        vel = f"{b['velocity']:5.0f}" if math.isfinite(b["velocity"]) else "    -"
        w(
            f"{b['number']:>3}  {b['expected']:>8} {b['correct']:>7} {b['wrong_pitch']:>5} "
            f"{b['missed']:>6} {b['extra']:>5}  {timing}    {tempo}  {vel}     "
            f"{b['articulation']}\n"
        )


if __name__ == "__main__":
    sys.exit(main())
