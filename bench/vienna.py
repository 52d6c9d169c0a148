"""Vienna 4x22: the engine (live and offline) and the peers, same files, same metric.

    python -m bench.vienna [--engine-only | --peers-only] [--pieces Mozart,...] [--errors 0.03]
                           [--seed 0] [--limit N] [--peer-limit N] [--per-file] [--diff N]
                           [--json out.json]

``--errors`` takes a comma-separated list of rates; 0 is the performances as played.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sonata_engine.types import Score, SessionOptions

from bench.engine_run import load_engine_score, run_engine
from bench.groundtruth import Case, load_case, match_files
from bench.inject import inject
from bench.metric import Counts, Triple, compare
from bench.peers import PEERS

ENGINE = "sonata engine"


@dataclass
class Row:
    system: str
    mode: str  # "online" | "offline"
    per_case: dict[str, Counts] = field(default_factory=dict)
    note_ns: dict[str, np.ndarray] = field(default_factory=dict)  # per-note decision times
    seconds: dict[str, float] = field(default_factory=dict)  # decision time per case
    notes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def figures(self, names: list[str] | None = None) -> dict[str, Any]:
        chosen = sorted(self.per_case) if names is None else names
        total = Counts()
        for name in chosen:
            total.add(self.per_case[name])
        out = total.summary()
        out.update(system=self.system, mode=self.mode, files=len(chosen))
        notes = sum(self.notes.get(n, 0) for n in chosen)
        seconds = sum(self.seconds.get(n, 0.0) for n in chosen)
        out["per_note_us"] = 1e6 * seconds / notes if notes else None
        timed = [self.note_ns[n] for n in chosen if n in self.note_ns]
        if timed:
            ns = np.concatenate(timed)
            out["per_note_p50_us"] = float(np.percentile(ns, 50)) / 1e3
            out["per_note_p99_us"] = float(np.percentile(ns, 99)) / 1e3
            out["per_note_max_us"] = float(ns.max()) / 1e3
        out["errors"] = self.errors[:20]
        out["error_count"] = len(self.errors)
        return out


def evaluate(
    files: list[Path],
    rates: list[float],
    seed: int,
    *,
    engine: bool = True,
    peers: list[str] | None = None,
    peer_files: list[Path] | None = None,
    options: SessionOptions | None = None,
    progress: bool = True,
    diff: int = 0,
    per_file: bool = False,
) -> dict[str, Any]:
    """Figures per error rate, for the engine on ``files`` and the peers on ``peer_files``
    (default: the same files); the engine's figures on the peers' subset are given too."""
    options = options or SessionOptions()
    peers = list(PEERS) if peers is None else peers
    peer_names = {f.stem for f in (files if peer_files is None else peer_files)}
    scores: dict[str, Score] = {}
    sets: list[dict[str, Any]] = []
    for rate in rates:
        rows: dict[str, Row] = {}
        if engine:
            rows["live"] = Row(ENGINE, "online")
            rows["final"] = Row(ENGINE, "offline")
        for peer in peers:
            rows[peer] = Row(peer, PEERS[peer][0])
        for n, path in enumerate(files):
            case = load_case(path)
            if rate > 0:
                case = inject(case, rate, seed)
            if progress:
                print(
                    f"\r  {_label(rate)}: {n + 1}/{len(files)} {case.name:<32}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
            if engine:
                if case.piece not in scores:
                    scores[case.piece] = load_engine_score(case.piece)
                _run_ours(case, scores[case.piece], options, rows["live"], rows["final"], diff)
            if case.name in peer_names:
                for peer in peers:
                    _run_peer(case, peer, rows[peer])
        if progress:
            print(file=sys.stderr)
        if per_file:
            _print_per_file(rate, rows)
        figures = []
        for key, row in rows.items():
            figures.append(row.figures())
            if key in ("live", "final") and peers and len(peer_names) < len(files):
                same = row.figures(sorted(peer_names & set(row.per_case)))
                same["subset"] = "peer files"
                figures.append(same)
        match_f_per_file = {
            f"{row.system} {row.mode}": {n: c.f("match") for n, c in sorted(row.per_case.items())}
            for row in rows.values()
        }
        sets.append(
            {
                "set": _label(rate),
                "error_rate": rate,
                "rows": figures,
                "match_f_per_file": match_f_per_file,
            }
        )
    return {
        "files": [f.stem for f in files],
        "peer_files": sorted(peer_names) if peers else [],
        "seed": seed,
        "score_ids_without_ground_truth": _foreign_ids(files, scores),
        "sets": sets,
    }


def _run_ours(
    case: Case, score: Score, options: SessionOptions, live: Row, final: Row, diff: int
) -> None:
    outcome = run_engine(case, score, options)
    if diff:
        _print_diff(case, score, "live", outcome.online.triples, diff)
        if outcome.offline is not None:
            _print_diff(case, score, "final", outcome.offline, diff)
    live.per_case[case.name] = compare(outcome.online.triples, case.truth, case.substitutions)
    live.note_ns[case.name] = outcome.note_on_ns
    live.seconds[case.name] = float(outcome.note_on_ns.sum()) / 1e9
    live.notes[case.name] = len(outcome.note_on_ns)
    if outcome.online.unjudged_notes:
        live.errors.append(f"{case.name}: {outcome.online.unjudged_notes} notes not judged")
    live.errors.extend(f"{case.name}: {e}" for e in outcome.errors if not e.startswith("finish"))
    # a failed finish scores as an empty alignment: every truth entry is missed
    final.per_case[case.name] = compare(outcome.offline or set(), case.truth, case.substitutions)
    if outcome.finish_s is not None:
        final.seconds[case.name] = outcome.finish_s
        final.notes[case.name] = len(case.perf)
    final.errors.extend(f"{case.name}: {e}" for e in outcome.errors if e.startswith("finish"))


def _print_per_file(rate: float, rows: dict[str, Row]) -> None:
    names = sorted({n for row in rows.values() for n in row.per_case})
    print(f"{_label(rate)}: match F per file")
    print("  " + " ".join(f"{row.system[:18] + ' ' + row.mode[:3]:>22}" for row in rows.values()))
    for name in names:
        cells = [
            f"{row.per_case[name].f('match'):>22.4f}" if name in row.per_case else " " * 22
            for row in rows.values()
        ]
        print(f"  {' '.join(cells)}  {name}")


def _print_diff(case: Case, score: Score, mode: str, predicted: set[Triple], limit: int) -> None:
    """The first disagreements with the ground truth, in performance then score order."""
    order = {str(p): k for k, p in enumerate(case.perf["id"])}
    onset = {str(p): float(t) for p, t in zip(case.perf["id"], case.perf["onset_s"], strict=True)}
    pitch = {str(p): int(x) for p, x in zip(case.perf["id"], case.perf["pitch"], strict=True)}
    notes = score.notes
    where_s = {
        str(n["id"]): f"bar {int(n['measure'])} q {float(n['onset_q']):.2f} pitch {int(n['pitch'])}"
        for n in notes
    }
    rank_s = {str(n["id"]): k for k, n in enumerate(notes)}

    def key(t: Triple) -> tuple[int, int]:
        if t[2] is not None:
            return (0, order.get(t[2], -1))
        return (1, rank_s.get(t[1] or "", -1))

    wrong = sorted(predicted - case.truth, key=key)
    lost = sorted(case.truth - predicted, key=key)
    print(f"\n{case.name} {mode}: {len(wrong)} wrong, {len(lost)} lost", file=sys.stderr)
    for tag, rows in (("said", wrong), ("truth", lost)):
        for label, sid, pid in rows[:limit]:
            perf = f"{pid} pitch {pitch[pid]} at {onset[pid]:.3f}s" if pid in onset else ""
            print(
                f"  {tag:>5}: {label:<9} {sid or '-':<14} {where_s.get(sid or '', ''):<28} {perf}",
                file=sys.stderr,
            )


def _run_peer(case: Case, peer: str, row: Row) -> None:
    try:
        outcome = PEERS[peer][1](case)
    except Exception as exc:
        row.errors.append(f"{case.name}: {type(exc).__name__}: {exc}")
        row.per_case[case.name] = compare(set(), case.truth, case.substitutions)
        return
    row.per_case[case.name] = compare(outcome.triples, case.truth, case.substitutions)
    row.seconds[case.name] = outcome.seconds
    row.notes[case.name] = len(case.perf)
    if outcome.note_ns is not None:
        row.note_ns[case.name] = outcome.note_ns


def _foreign_ids(files: list[Path], scores: dict[str, Score]) -> dict[str, list[str]]:
    """Score notes the engine was given that the match files never mention: any decision about
    them counts against the engine."""
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for path in files:
        case = load_case(path)
        if case.piece in seen or case.piece not in scores:
            continue
        seen.add(case.piece)
        ids = {str(s) for s in scores[case.piece].notes["id"]}
        foreign = sorted(ids - case.truth_score_ids)
        if foreign:
            out[case.piece] = foreign
    return out


def _label(rate: float) -> str:
    return "as played" if rate == 0 else f"+{rate:.0%} of each error"


def table(result: dict[str, Any]) -> str:
    lines = [
        "| set | system | mode | files | match P | match R | match F | extra F | missed F "
        "| wrong-note recall | per note | p99 per note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["sets"]:
        for r in s["rows"]:
            wr = r["wrong_note_recall"]
            files = f"{r['files']}" + (" (peer subset)" if r.get("subset") else "")
            lines.append(
                f"| {s['set']} | {r['system']} | {r['mode']} | {files} "
                f"| {r['match_precision']:.4f} | {r['match_recall']:.4f} | {r['match_f']:.4f} "
                f"| {r['insertion_f']:.3f} | {r['deletion_f']:.3f} "
                f"| {'-' if wr is None else f'{wr:.3f}'} | {_us(r.get('per_note_us'))} "
                f"| {_us(r.get('per_note_p99_us'))} |"
            )
            if r["error_count"]:
                lines.append(f"|   | {r['error_count']} problem(s), first: {r['errors'][0]} |")
    return "\n".join(lines)


def _us(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} µs" if value < 1000 else f"{value / 1000:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vienna", description=__doc__)
    parser.add_argument("--engine-only", action="store_true", help="skip the peers")
    parser.add_argument("--peers-only", action="store_true", help="skip the engine")
    parser.add_argument("--pieces", default="", help="comma-separated piece name prefixes")
    parser.add_argument("--errors", default="0,0.03", help="comma-separated error rates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="performances per piece")
    parser.add_argument("--peer-limit", type=int, default=None, help="peers: files per piece")
    parser.add_argument("--diff", type=int, default=0, help="print N disagreements per file")
    parser.add_argument("--per-file", action="store_true", help="print match F per file")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    pieces = [p for p in args.pieces.split(",") if p]
    files = match_files(pieces, args.limit)
    if not files:
        parser.error(f"no match files for pieces {pieces}")
    peer_files = match_files(pieces, args.peer_limit) if args.peer_limit else None
    if peer_files is not None:
        peer_files = [f for f in peer_files if f in files]
    started = time.perf_counter()
    result = evaluate(
        files,
        [float(r) for r in args.errors.split(",")],
        args.seed,
        engine=not args.peers_only,
        peers=[] if args.engine_only else None,
        peer_files=peer_files,
        diff=args.diff,
        per_file=args.per_file,
    )
    result["wall_s"] = time.perf_counter() - started
    print(table(result))
    if result["score_ids_without_ground_truth"]:
        for piece, ids in result["score_ids_without_ground_truth"].items():
            print(f"note: {piece}: {len(ids)} score notes not in the match files, e.g. {ids[:3]}")
    print(f"{len(files)} files in {result['wall_s']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
