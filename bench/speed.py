"""Speed and memory of the live session, on one core.

    python -m bench.speed [--sizes 100,1000,10000] [--repeats 3] [--core N] [--json out.json]

Each size is a prefix (whole bars) of the long piece built from the Vienna scores; a clean
simulated performance of it is fed as a device would. Each note_on call is timed with
perf_counter_ns (and the thread's CPU clock); a first pass over the same piece warms the
caches and is not counted. The garbage collector runs as it does in the service: what the
process made before the session (here the benchmark's cached cases and results; in ai-scoring
the modules, the app and its clients) is frozen out of the collector's sight
(``gc.freeze()``, as ``sonata_scoring.main`` does at start-up), what the session makes is
collected as usual. The figures of the repeats are reported each, and their median; the
maximum is also given over the per-note minimum across the repeats (``min_of_repeats``): a
note slow in every repeat is slow in the engine (its own work, its garbage collections), one
slow in a single repeat was delayed by another process on the machine (the load average is
recorded).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from sonata_engine import LiveSession
from sonata_engine.types import Score, SessionOptions

from bench.engine_run import NOTE_OFF, NOTE_ON, events
from bench.longscore import concatenate, dedupe, prefix, vienna_scores
from bench.simulator import SCENARIOS, simulate

CLEAN = next(s for s in SCENARIOS if s.name == "clean")


def pin(core: int | None) -> int | None:
    """Run on one core (the last one unless told); None where the OS cannot pin."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    chosen = cores[-1] if core is None else core
    os.sched_setaffinity(0, {chosen})
    return chosen


def feed(score: Score, perf_events: list[tuple[float, int, int, Any]]) -> dict[str, Any]:
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    gc.collect()
    gc.freeze()
    session = LiveSession(score, SessionOptions())
    note_ns: list[int] = []
    cpu_ns: list[int] = []
    other_ns = 0
    for t, kind, _, payload in perf_events:
        start = clock()
        if kind == NOTE_ON:
            start_cpu = cpu()
            session.note_on(t, int(payload["pitch"]), int(payload["velocity"]), str(payload["id"]))
            cpu_ns.append(cpu() - start_cpu)
            note_ns.append(clock() - start)
        elif kind == NOTE_OFF:
            session.note_off(t, int(payload["pitch"]))
            other_ns += clock() - start
        else:
            session.pedal(t, int(payload))
            other_ns += clock() - start
    ns = np.array(note_ns, dtype=np.int64)
    ns_cpu = np.array(cpu_ns, dtype=np.int64)
    start = clock()
    report_error = None
    try:
        session.finish()
    except Exception as exc:
        report_error = f"{type(exc).__name__}: {exc}"
    finish_s = (clock() - start) / 1e9
    del session
    gc.unfreeze()
    return {
        "_ns": ns,
        "notes": len(ns),
        "p50_us": float(np.percentile(ns, 50)) / 1e3,
        "p99_us": float(np.percentile(ns, 99)) / 1e3,
        "max_us": float(ns.max()) / 1e3,
        "mean_us": float(ns.mean()) / 1e3,
        # the same call on the thread's CPU clock: what the machine's other processes cost it
        "cpu_p50_us": float(np.percentile(ns_cpu, 50)) / 1e3,
        "cpu_p99_us": float(np.percentile(ns_cpu, 99)) / 1e3,
        "cpu_max_us": float(ns_cpu.max()) / 1e3,
        "notes_per_s": len(ns) / ((ns.sum() + other_ns) / 1e9),
        "note_on_only_notes_per_s": len(ns) / (ns.sum() / 1e9),
        "finish_s": None if report_error else finish_s,
        "finish_error": report_error,
    }


def memory(score: Score, perf_events: list[tuple[float, int, int, Any]]) -> dict[str, Any]:
    """tracemalloc figures in bytes: the score itself, a session at start (first and second on
    the same score: what the second does not pay is shared), and after the whole performance."""
    gc.collect()
    tracemalloc.start()
    shadow = copy.deepcopy(score)
    score_bytes = tracemalloc.get_traced_memory()[0]
    del shadow
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    first = LiveSession(score, SessionOptions())
    first_bytes = tracemalloc.get_traced_memory()[0] - base
    base2 = tracemalloc.get_traced_memory()[0]
    second = LiveSession(score, SessionOptions())
    second_bytes = tracemalloc.get_traced_memory()[0] - base2
    for t, kind, _, payload in perf_events:
        if kind == NOTE_ON:
            second.note_on(t, int(payload["pitch"]), int(payload["velocity"]), str(payload["id"]))
        elif kind == NOTE_OFF:
            second.note_off(t, int(payload["pitch"]))
        else:
            second.pedal(t, int(payload))
    after_bytes = tracemalloc.get_traced_memory()[0] - base2
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del first, second
    return {
        "score_notes": len(score.notes),
        "score_bytes": score_bytes,
        "first_session_bytes_at_start": first_bytes,
        "second_session_bytes_at_start": second_bytes,
        "session_bytes_after_performance": after_bytes,
        "performance_notes": sum(1 for e in perf_events if e[1] == NOTE_ON),
        "peak_bytes": peak,
    }


def run(sizes: list[int], repeats: int, core: int | None, seed: int = 0) -> dict[str, Any]:
    chosen = pin(core)
    load_at_start = os.getloadavg()
    scores = [dedupe(s) for s in vienna_scores().values()]
    long_score = dedupe(concatenate(scores, max(sizes)))
    by_size: list[dict[str, Any]] = []
    for size in sizes:
        score = prefix(long_score, size)
        perf = simulate(score, CLEAN, seed, f"speed{size}").case.perf
        perf_events = events(perf, [])
        feed(score, perf_events)  # warm-up, not counted
        runs = [feed(score, perf_events) for _ in range(repeats)]
        per_note_min = np.min(np.stack([r.pop("_ns") for r in runs]), axis=0)
        median: dict[str, float | None] = {
            k: float(np.median([r[k] for r in runs]))
            for k in (
                "p50_us", "p99_us", "mean_us", "notes_per_s", "note_on_only_notes_per_s",
                "cpu_p50_us", "cpu_p99_us",
            )
        }  # fmt: skip
        median["max_us"] = float(max(r["max_us"] for r in runs))
        median["cpu_max_us"] = float(max(r["cpu_max_us"] for r in runs))
        finishes = [r["finish_s"] for r in runs if r["finish_s"] is not None]
        median["finish_s"] = float(np.median(finishes)) if finishes else None
        median["min_of_repeats_p99_us"] = float(np.percentile(per_note_min, 99)) / 1e3
        median["min_of_repeats_max_us"] = float(per_note_min.max()) / 1e3
        by_size.append(
            {"score_notes": len(score.notes), "perf_notes": len(perf), "median": median,
             "runs": runs}
        )  # fmt: skip
    largest = prefix(long_score, max(sizes))
    big_perf = simulate(largest, CLEAN, seed, f"speed{max(sizes)}").case.perf
    mem = memory(largest, events(big_perf, []))
    small, big = by_size[0]["median"], by_size[-1]["median"]
    return {
        "core": chosen,
        "cpu": platform.processor() or platform.machine(),
        "load_average_at_start": load_at_start,
        "load_average": os.getloadavg(),
        "repeats": repeats,
        "sizes": by_size,
        "flatness": {
            "p50_ratio_largest_to_smallest": big["p50_us"] / small["p50_us"],
            "mean_ratio_largest_to_smallest": big["mean_us"] / small["mean_us"],
        },
        "memory": mem,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| score notes | p50 | p99 | max | max, per-note min of repeats | mean | notes/s "
        "| CPU clock: p50, p99, max | finish() |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["sizes"]:
        m = s["median"]
        fin = "-" if m["finish_s"] is None else f"{m['finish_s'] * 1000:.0f} ms"
        lines.append(
            f"| {s['score_notes']:,} | {m['p50_us']:.0f} µs | {m['p99_us']:.0f} µs "
            f"| {m['max_us'] / 1000:.2f} ms | {m['min_of_repeats_max_us'] / 1000:.2f} ms "
            f"| {m['mean_us']:.0f} µs | {m['notes_per_s']:,.0f} "
            f"| {m['cpu_p50_us']:.0f} µs, {m['cpu_p99_us']:.0f} µs, "
            f"{m['cpu_max_us'] / 1000:.2f} ms "
            f"| {fin} |"
        )
    f, mem = result["flatness"], result["memory"]
    load = result["load_average"]
    lines.append(f"load average during the run: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min)")
    lines.append(
        f"per-note cost, largest / smallest piece: p50 x{f['p50_ratio_largest_to_smallest']:.2f},"
        f" mean x{f['mean_ratio_largest_to_smallest']:.2f}"
    )
    lines.append(
        f"memory, {mem['score_notes']:,}-note score: score {mem['score_bytes'] / 1e6:.2f} MB; "
        f"session at start {mem['first_session_bytes_at_start'] / 1e6:.2f} MB (first), "
        f"{mem['second_session_bytes_at_start'] / 1e6:.2f} MB (second); after "
        f"{mem['performance_notes']:,} notes {mem['session_bytes_after_performance'] / 1e6:.2f} MB"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--core", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run([int(s) for s in args.sizes.split(",")], args.repeats, args.core)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
