"""Live sessions under load: N learners replaying real Vienna 4x22 takes at real speed.

Starts its own SecantusDB, a RabbitMQ vhost, a JWKS, ai-scoring as a real uvicorn process and,
when nginx is installed, the gateway rendered by deploy/local's plan; publishes the Schubert
piece and paid entitlements, then for each N in ``--sessions`` opens N WebSockets, starts a
session on each and plays the takes (each note-on and note-off at its own time, one message
each) for ``--seconds``. The round trip is from sending a message with a note-on to its
`judged` answer; a message never answered within 5 s of the end is lost. Stops rising once p99
passes ``--p99-ms`` (``--keep-rising`` goes on, to see where it saturates). The learners are
spread over ``--clients`` processes on uvloop, their messages encoded before the round, so the
client is not what saturates first; each round records every process's CPU (share of a core,
and ms per note, which holds whatever else the machine was doing). Writes
bench/results/ws-load-<date>.json. Run: `make bench-ws`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from prometheus_client.parser import text_string_to_metric_families
from sonata_contracts.db import PiecePublished
from sonata_contracts.payment import EntitlementsChanged, Limits
from sonata_engine import load_performance, load_score, score_to_dict
from sonata_testing import (
    JwksServer,
    RabbitVhost,
    SecantusServer,
    ServiceProcess,
    SigningKey,
    TokenFactory,
    free_port,
    publish_events,
    wait_http_ok,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "local"))
from sonata_local.plan import SERVICES, Config, render_local_nginx  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VIENNA = ROOT.parent / "shared" / "eval" / "vienna4x22"
PIECE = "bench-schubert-d783-15"
UNLIMITED = Limits(scored_sessions_per_day=None, coach=True, full_reports=True, teacher_seats=0)


def takes() -> list[list[dict[str, Any]]]:
    out = []
    for midi in sorted((VIENNA / "midi").glob("Schubert_D783_no15_p*.mid")):
        events = []
        for n in load_performance(midi).notes:
            p, on, off = int(n["pitch"]), float(n["onset_s"]), float(n["offset_s"])
            events.append({"t": on, "kind": "on", "pitch": p, "velocity": int(n["velocity"])})
            events.append({"t": off, "kind": "off", "pitch": p})
        out.append(sorted(events, key=lambda e: (e["t"], e["kind"] == "on")))
    return out


# (device time, is a note-on, the message as sent): encoded once, before any round
Script = list[tuple[float, bool, str]]


def scripts(all_takes: list[list[dict[str, Any]]], seconds: float) -> list[Script]:
    return [
        [
            (e["t"], e["kind"] == "on", json.dumps({"type": "notes", "seq": seq, "events": [e]}))
            for seq, e in enumerate(take, start=1)
            if e["t"] <= seconds
        ]
        for take in all_takes
    ]


JUDGED = '{"type":"judged","seq":'


async def learner(url: str, token: str, script: Script, rtts: list[float]) -> tuple[int, int]:
    """(note-on messages sent, answered)."""
    sent: dict[int, float] = {}
    answered = 0
    sending_done = False
    drained = asyncio.Event()
    async with websockets.connect(url, subprotocols=["sonata.v1", f"bearer.{token}"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "start", "seq": 0, "piece_id": PIECE}))
        while json.loads(await ws.recv())["type"] != "started":
            pass

        async def read() -> None:
            nonlocal answered
            clock = time.perf_counter
            async for raw in ws:
                # the server writes type and seq first: acks and positions need no parsing
                if not (isinstance(raw, str) and raw.startswith(JUDGED)):
                    continue
                seq = json.loads(raw)["seq"]
                if seq in sent:
                    rtts.append((clock() - sent.pop(seq)) * 1000)
                    answered += 1
                    if sending_done and not sent:
                        drained.set()

        reader = asyncio.create_task(read())
        start = time.perf_counter()
        total = 0
        for seq, (t, is_on, message) in enumerate(script, start=1):
            delay = start + t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if is_on:
                sent[seq] = time.perf_counter()
                total += 1
            await ws.send(message)
        sending_done = True
        if sent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), 5)
        reader.cancel()
    return total, answered


async def _learners(
    url: str, tokens: list[str], picks: list[int], all_scripts: list[Script], gap_s: float
) -> dict[str, Any]:
    rtts: list[float] = []
    tasks = []
    # start the learners a little apart, as real ones arrive, not in one instant
    for token, pick in zip(tokens, picks, strict=True):
        tasks.append(asyncio.create_task(learner(url, token, all_scripts[pick], rtts)))
        await asyncio.sleep(gap_s)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    times = os.times()
    return {
        "sent": sum(r[0] for r in ok),
        "answered": sum(r[1] for r in ok),
        "rtts": rtts,
        "errors": [f"{type(e).__name__}: {e}" for e in results if isinstance(e, BaseException)],
        "cpu_s": times.user + times.system,
    }


_SCRIPTS: list[Script] = []  # set before the client processes fork, read in them


def _client_process(url: str, tokens: list[str], picks: list[int], gap_s: float) -> Any:
    """One bench client process: its share of the learners on its own event loop."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(_learners(url, tokens, picks, _SCRIPTS, gap_s))


async def round_(url: str, tokens: list[str], seconds: float, clients: int, gap_s: float) -> Any:
    """N learners spread over `clients` processes (Python on the same cores as the server:
    one process would be the first thing to saturate)."""
    picks = [i % len(_SCRIPTS) for i in range(len(tokens))]
    loop = asyncio.get_running_loop()
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(clients, mp_context=fork) as pool:
        parts = await asyncio.gather(*[
            loop.run_in_executor(
                pool, _client_process, url, tokens[k::clients], picks[k::clients],
                gap_s * clients,
            )
            for k in range(clients)
        ])  # fmt: skip
    sent = sum(p["sent"] for p in parts)
    answered = sum(p["answered"] for p in parts)
    errors = [e for p in parts for e in p["errors"]]
    rtts = [r for p in parts for r in p["rtts"]]
    a = np.array(rtts) if rtts else np.array([np.nan])
    return {
        "sessions": len(tokens),
        "failed_sessions": len(errors),
        "notes_sent": sent,
        "notes_per_s": round(sent / seconds, 1),
        "lost": sent - answered,
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(np.max(a)), 2),
        "errors": sorted(set(errors)),
    }, sum(p["cpu_s"] for p in parts)


async def judgement_buckets(base_url: str) -> dict[float, float]:
    """ai-scoring's sonata_engine_judgement_seconds buckets (cumulative count by upper bound)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{base_url}/metrics")).text
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sonata_engine_judgement_seconds_bucket"
    }


def server_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """The bucket bounds (ms) under which 50 % and 99 % of the round's judgements stayed inside
    ai-scoring: its own time, without the network and the wait for a CPU before a read."""
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in sorted(after)}
    total = delta.get(float("inf"), 0.0)
    out: dict[str, Any] = {"messages": int(total)}
    for name, q in (("p50_ms_at_most", 0.5), ("p99_ms_at_most", 0.99)):
        le = next((b for b, n in delta.items() if total and n >= q * total), float("inf"))
        out[name] = None if le == float("inf") else round(le * 1000, 3)
    return out


def cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far; 0 once it is gone."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_tree_s(pid: int | None) -> float:
    """CPU seconds of a process and its children (nginx's master and its workers)."""
    if pid is None:
        return 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return cpu_s(pid) + sum(cpu_s(int(c)) for c in children)


def cpu_all(pids: dict[str, int | None]) -> dict[str, float]:
    return {k: cpu_tree_s(v) for k, v in pids.items()}


def gateway(scoring: ServiceProcess, var: Path) -> tuple[subprocess.Popen[bytes] | None, int]:
    if not Path("/usr/sbin/nginx").exists():
        return None, scoring.port
    port = free_port()
    ports = {s.name: free_port() for s in SERVICES} | {"ai-scoring": scoring.port}
    cfg = Config(
        root=ROOT, var_dir=var, python=sys.executable, ports=ports, gateway_port=port,
        mongo_port=free_port(), prometheus_port=free_port(), external_mongo_url=None,
        amqp_url="amqp://127.0.0.1/", environment="test", log_level="WARNING",
        nginx="/usr/sbin/nginx", prometheus=None,
    )  # fmt: skip
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (cfg.nginx_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    conf = cfg.nginx_dir / "nginx.conf"
    conf.write_text(render_local_nginx(cfg))
    proc = subprocess.Popen(["/usr/sbin/nginx", "-p", f"{cfg.nginx_dir}/", "-c", str(conf)])
    wait_http_ok(f"http://127.0.0.1:{port}/healthz", 20, proc)
    return proc, port


async def run(args: argparse.Namespace) -> dict[str, Any]:
    key = SigningKey()
    factory = TokenFactory(key)
    var = Path(f"/tmp/sonata-ws-load-{uuid.uuid4().hex[:6]}")
    with SecantusServer() as mongo, RabbitVhost("ws-load") as vhost, JwksServer([key.jwk]) as jwks:
        scoring = ServiceProcess(
            "ai-scoring",
            "sonata_scoring.main:create_app",
            {"ENVIRONMENT": "test", "MONGODB_URL": mongo.url, "AMQP_URL": vhost.url,
             "AUTH_JWKS_URL": jwks.url, "LOG_LEVEL": "WARNING", "WS_IDLE_TIMEOUT_S": "600",
             **dict(kv.split("=", 1) for kv in args.env)},
            extra_args=[
                *([] if args.deflate else ["--ws-per-message-deflate", "false"]),
                *(["--workers", str(args.workers)] if args.workers > 1 else []),
                *(["--ws", args.ws] if args.ws else []),
            ],
        ).start(timeout=180)  # fmt: skip
        proxy, port = (None, scoring.port) if args.direct else gateway(scoring, var)
        try:
            score = score_to_dict(load_score(VIENNA / "musicxml" / "Schubert_D783_no15.musicxml"))
            users = [f"bench-{i}" for i in range(max(args.sessions))]
            now = datetime.now(UTC)
            await publish_events(vhost.url, [
                PiecePublished(piece_id=PIECE, version=1, title="Schubert D783 no. 15",
                               composer="Schubert", level=4, owner_id=None, visibility="public",
                               score=score),
                *[EntitlementsChanged(user_id=u, plan="premium", limits=UNLIMITED,
                                      valid_until=now + timedelta(days=1), version=1, as_of=now)
                  for u in users],
            ])  # fmt: skip
            await asyncio.sleep(5)  # the consumer keeps the piece and the plans
            url = f"ws://127.0.0.1:{port}/ws/v1/sessions"
            _SCRIPTS[:] = scripts(takes(), args.seconds)
            # one handshake first: the kit's verifier fetches auth's keys on first use, and
            # handshakes racing that first fetch are refused 503 (a known kit limitation)
            warm = factory.sign(factory.claims(sub=users[0]))
            async with websockets.connect(url, subprotocols=["sonata.v1", f"bearer.{warm}"]):  # type: ignore[list-item]
                pass
            rounds = []
            pids = {
                "ai_scoring": scoring.proc.pid if scoring.proc else None,
                "secantusdb": mongo._proc.pid if mongo._proc else None,
                "nginx": proxy.pid if proxy else None,
            }
            for n in args.sessions:
                tokens = [factory.sign(factory.claims(sub=u)) for u in users[:n]]
                judged_before = await judgement_buckets(scoring.base_url)
                before, wall = cpu_all(pids), time.perf_counter()
                result, client_cpu_s = await round_(
                    url, tokens, args.seconds, args.clients, args.arrival_gap_ms / 1000
                )
                wall = time.perf_counter() - wall
                # ai-scoring's own histogram (one worker's, with --workers > 1)
                result["server_judgement"] = server_quantiles(
                    judged_before, await judgement_buckets(scoring.base_url)
                )
                used = {"bench_client": client_cpu_s} | {
                    k: v - before[k] for k, v in cpu_all(pids).items()
                }
                # share of one core each process used during the round: where the time goes
                result["cpu_share_of_one_core"] = {k: round(v / wall, 3) for k, v in used.items()}
                # CPU time per note-on sent (each comes with its note-off message): what one
                # more learner costs, whatever else the machine was doing
                notes = max(1, result["notes_sent"])
                result["cpu_ms_per_note"] = {k: round(v * 1000 / notes, 3) for k, v in used.items()}
                result["load_average_1m"] = round(os.getloadavg()[0], 2)
                print(json.dumps(result), flush=True)
                rounds.append(result)
                over = result["p99_ms"] > args.p99_ms or result["failed_sessions"]
                if over and not args.keep_rising:
                    break
        finally:
            if proxy is not None:
                proxy.terminate()
                proxy.wait(10)
            scoring.stop()
    return {
        "benchmark": "ws-load",
        "date": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
            "load_average_1_5_15m": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
        },
        "bench_client_processes": args.clients,
        "ai_scoring_processes": args.workers,
        "arrival_gap_ms": args.arrival_gap_ms,
        "service_env": args.env,
        "through_gateway": proxy is not None,
        "permessage_deflate": args.deflate,
        "uvicorn_ws": args.ws or "auto",
        "seconds_per_round": args.seconds,
        "p99_target_ms": args.p99_ms,
        "rounds": rounds,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[10, 50, 100, 200, 350, 500])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--p99-ms", type=float, default=5.0)
    p.add_argument(
        "--deflate",
        action="store_true",
        help="let uvicorn negotiate permessage-deflate (deploy/local and the image turn it off)",
    )
    p.add_argument("--direct", action="store_true", help="straight to ai-scoring, no nginx")
    p.add_argument("--clients", type=int, default=2, help="bench client processes")
    p.add_argument("--workers", type=int, default=1, help="ai-scoring processes (uvicorn)")
    p.add_argument(
        "--arrival-gap-ms",
        type=float,
        default=10.0,
        help="learners arrive this far apart (10 ms: 500 of them within 5 s)",
    )
    p.add_argument(
        "--ws",
        choices=("websockets", "websockets-sansio", "wsproto"),
        help="uvicorn's WebSocket implementation (default: uvicorn's auto)",
    )
    p.add_argument("--env", nargs="*", default=[], help="KEY=VALUE settings for ai-scoring")
    p.add_argument("--keep-rising", action="store_true", help="go on past the p99 target")
    p.add_argument("--out", type=Path, help="write here instead of bench/results/ws-load-<date>")
    args = p.parse_args()
    result = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"ws-load-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
