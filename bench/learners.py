"""The engine on simulated learners: figures per scenario and recovery after jumps.

    python -m bench.learners [--seeds 0,1,2] [--scenarios learner,...] [--no-long] [--json out.json]

Recovery after a jump, restart or pause: the number of notes of the new pass the session
judges wrongly before its decisions are right for ``SETTLE`` notes in a row. "strict": the exact
score note; "same music": any score note of the same pitch whose chord, and the chords before
it back to where the pass began (at most ``SAME_MUSIC_CHORDS``), hold the same pitches as the
true note's: at the moment of judging, nothing played so far tells such places apart (an
unfolded repeat, a bar written twice, the same chord opening two bars). Once the music of the
two places differs, only the true place counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sonata_engine.types import Judgement, Score

from bench.engine_run import run_engine
from bench.longscore import concatenate, dedupe, vienna_scores
from bench.metric import Counts, compare
from bench.simulator import SCENARIOS, SETTLE, Scenario, Session, simulate

LONG_SCENARIOS = ("jump back", "jump ahead", "learner")
LONG_NOTES = 10_000
SAME_MUSIC_CHORDS = 16


@dataclass(frozen=True)
class Music:
    """Per score note its pitch, its chord's pitches and its place in the piece's sequence of
    chords (grace notes left out: an ornament does not make two bars different music)."""

    pitch: dict[str, int]
    chord: dict[str, frozenset[int]]
    group: dict[str, int]
    chords: list[frozenset[int]]

    def same(self, said: str, truth: str, pass_start: int) -> bool:
        """``said`` cannot be told from ``truth`` by the notes of a pass begun at chord
        ``pass_start``: same pitch, same chord, and the same chords before it back to the
        pass's start."""
        if self.pitch.get(said) != self.pitch.get(truth) or self.chord[said] != self.chord[truth]:
            return False
        gs, gt = self.group[said], self.group[truth]
        depth = min(max(gt - pass_start, 0), SAME_MUSIC_CHORDS)
        if gs < depth:
            return False
        return all(self.chords[gs - k] == self.chords[gt - k] for k in range(1, depth + 1))


def music_keys(score: Score) -> Music:
    notes = score.notes
    onsets, group_of = np.unique(notes["onset_q"], return_inverse=True)
    members = [np.flatnonzero(group_of == g) for g in range(len(onsets))]
    sets = [frozenset(int(p) for p in notes["pitch"][m]) for m in members]
    main = [g for g, m in enumerate(members) if not notes["is_grace"][m].all()]
    # each group's place in the sequence of chords: a grace group takes the chord after it
    place = np.searchsorted(np.array(main, dtype=np.int64), np.arange(len(onsets)))
    ids = [str(i) for i in notes["id"]]
    return Music(
        dict(zip(ids, (int(p) for p in notes["pitch"]), strict=True)),
        {sid: sets[int(g)] for sid, g in zip(ids, group_of, strict=True)},
        {sid: int(place[g]) for sid, g in zip(ids, group_of, strict=True)},
        [sets[g] for g in main],
    )


def recovery(session: Session, judgements: list[Judgement], keys: Music | None) -> list[int | None]:
    """Per jump of the session: notes judged wrongly before the session settles (None: never
    within the pass). With ``keys`` (see music_keys), a note of the same music counts as right."""
    first: dict[str, Judgement] = {}
    for j in judgements:
        if j.perf_id is not None and j.kind != "missed" and j.perf_id not in first:
            first[j.perf_id] = j
    meant = {pid: sid for label, sid, pid in session.case.truth if label == "match"}

    def right(pid: str, start: int) -> bool:
        j = first.get(pid)
        if j is None:
            return False
        if pid not in meant:
            return j.kind != "correct"
        truth = str(meant[pid])
        if j.kind != "correct" or j.score_id is None:
            return False
        return j.score_id == truth or (keys is not None and keys.same(j.score_id, truth, start))

    out: list[int | None] = []
    for jump in session.jumps:
        starts = [keys.group[str(meant[p])] for p in jump.perf_ids if p in meant] if keys else []
        start = min(starts, default=0)
        ok = [right(p, start) for p in jump.perf_ids]
        settled = None
        for i in range(len(ok)):
            if all(ok[i : i + SETTLE]):
                settled = i
                break
        out.append(settled)
    return out


def distribution(values: list[int | None]) -> dict[str, Any]:
    done = np.array([v for v in values if v is not None], dtype=float)
    if not values:
        return {"jumps": 0}
    return {
        "jumps": len(values),
        "within_3": float(np.mean([v is not None and v <= 3 for v in values])),
        "p50": float(np.percentile(done, 50)) if len(done) else None,
        "p90": float(np.percentile(done, 90)) if len(done) else None,
        "max": float(done.max()) if len(done) else None,
        "never": sum(v is None for v in values),
        "histogram": {str(k): int(np.sum(done == k)) for k in range(6)}
        | {">5": int(np.sum(done > 5))},
    }


def run(
    seeds: list[int], scenarios: list[Scenario], long: bool = True, progress: bool = True
) -> dict[str, Any]:
    """Every scenario on every score, once per seed (a seed draws the whole session: where
    the learner jumps, how fast, which notes go wrong)."""
    scores: dict[str, Score] = {k: dedupe(v) for k, v in vienna_scores().items()}
    long_score = dedupe(concatenate(list(scores.values()), LONG_NOTES)) if long else None
    results: list[dict[str, Any]] = []
    for scenario in scenarios:
        online, offline = Counts(), Counts()
        strict: dict[str, list[int | None]] = {}
        loose: dict[str, list[int | None]] = {}
        targets = list(scores.items())
        if long_score is not None and scenario.name in LONG_SCENARIOS:
            targets.append(("long", long_score))
        notes, errors, finish_s = 0, [], 0.0
        for (name, score), seed in ((t, s) for t in targets for s in seeds):
            if progress:
                print(f"\r  {scenario.name:<28} {name:<20}", end="", file=sys.stderr, flush=True)
            session = simulate(score, scenario, seed, name)
            outcome = run_engine(session.case, score, session.options, due=session.due)
            case = session.case
            online.add(compare(outcome.online.triples, case.truth, case.substitutions))
            offline.add(compare(outcome.offline or set(), case.truth, case.substitutions))
            notes += len(case.perf)
            finish_s += outcome.finish_s or 0.0
            errors += [f"{case.name}: {e}" for e in outcome.errors]
            for jump, s, lo in zip(
                session.jumps,
                recovery(session, outcome.judgements, None),
                recovery(session, outcome.judgements, music_keys(score)),
                strict=True,
            ):
                strict.setdefault(jump.kind, []).append(s)
                loose.setdefault(jump.kind, []).append(lo)
        all_strict = [v for vs in strict.values() for v in vs]
        all_loose = [v for vs in loose.values() for v in vs]
        results.append(
            {
                "scenario": scenario.name,
                "pieces": [name for name, _ in targets],
                "notes": notes,
                "online": online.summary(),
                "offline": offline.summary(),
                "recovery_strict": distribution(all_strict)
                | {"by_kind": {k: distribution(v) for k, v in strict.items()}},
                "recovery_same_music": distribution(all_loose)
                | {"by_kind": {k: distribution(v) for k, v in loose.items()}},
                "finish_s_total": finish_s,
                "errors": errors[:10],
                "error_count": len(errors),
            }
        )
    if progress:
        print(file=sys.stderr)
    return {"seeds": seeds, "settle_notes": SETTLE, "scenarios": results}


def table(result: dict[str, Any]) -> str:
    lines = [
        "| scenario | notes | live match F | final match F | live extra F | live missed F "
        "| live wrong-note recall | jumps | within 3 notes: exact, same music "
        "| p90 (same music) | never back |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["scenarios"]:
        on, off = r["online"], r["offline"]
        exact, same = r["recovery_strict"], r["recovery_same_music"]
        wr = on["wrong_note_recall"]
        within = "-" if not exact["jumps"] else f"{exact['within_3']:.0%}, {same['within_3']:.0%}"
        lines.append(
            f"| {r['scenario']} | {r['notes']} | {on['match_f']:.4f} | {off['match_f']:.4f} "
            f"| {_f(on, 'insertion')} | {_f(on, 'deletion')} "
            f"| {'-' if wr is None else f'{wr:.3f}'} | {exact['jumps']} | {within} "
            f"| {_num(same.get('p90'))} | {same.get('never', '-')} |"
        )
        if r["error_count"]:
            lines.append(f"|   | {r['error_count']} problem(s), first: {r['errors'][0]} |")
    return "\n".join(lines)


def _f(summary: dict[str, Any], label: str) -> str:
    """F, or when the truth has none of ``label``, how many the session claimed anyway."""
    counts = summary["counts"]
    if counts["truth"][label] == 0:
        return f"none true, {counts['pred'][label]} said"
    return f"{summary[label + '_f']:.3f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learners", description=__doc__)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated session seeds")
    parser.add_argument("--scenarios", default="", help="comma-separated scenario names")
    parser.add_argument("--no-long", action="store_true", help="skip the 10,000-note piece")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    wanted = [s for s in args.scenarios.split(",") if s]
    chosen = [s for s in SCENARIOS if not wanted or s.name in wanted]
    if not chosen:
        parser.error(f"unknown scenarios {wanted}; known: {[s.name for s in SCENARIOS]}")
    started = time.perf_counter()
    result = run([int(x) for x in args.seeds.split(",") if x], chosen, long=not args.no_long)
    result["wall_s"] = time.perf_counter() - started
    print(table(result))
    print(f"{result['wall_s']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
