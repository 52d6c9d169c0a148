"""Live sessions under load: N learners replaying real Vienna 4x22 takes at real speed.

Starts its own SecantusDB, a RabbitMQ vhost, a JWKS, ai-scoring as a real uvicorn process and,
when nginx is installed, the gateway rendered by deploy/local's plan; publishes the Schubert
piece and paid entitlements, then for each N in ``--sessions`` opens N WebSockets, starts a
session on each and plays the takes (each note-on and note-off at its own time, one message
each) for ``--seconds``. The round trip is from sending a message with a note-on to its
`judged` answer; a message never answered within 5 s of the end is lost. Stops rising once p99
passes ``--p99-ms`` (``--keep-rising`` goes on, to see where it saturates). Writes
bench/results/ws-load-<date>.json. Run: `make bench-ws`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import websockets
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


async def learner(
    url: str, token: str, take: list[dict[str, Any]], seconds: float, rtts: list[float]
) -> tuple[int, int]:
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
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "judged" and msg["seq"] in sent:
                    rtts.append((time.perf_counter() - sent.pop(msg["seq"])) * 1000)
                    answered += 1
                    if sending_done and not sent:
                        drained.set()

        reader = asyncio.create_task(read())
        start = time.perf_counter()
        total = 0
        for seq, event in enumerate(take, start=1):
            if event["t"] > seconds:
                break
            delay = start + event["t"] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if event["kind"] == "on":
                sent[seq] = time.perf_counter()
                total += 1
            await ws.send(json.dumps({"type": "notes", "seq": seq, "events": [event]}))
        sending_done = True
        if sent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), 5)
        reader.cancel()
    return total, answered


async def round_(url: str, tokens: list[str], all_takes: list[Any], seconds: float) -> Any:
    rtts: list[float] = []
    # start the learners a little apart, as real ones arrive, not in one instant
    tasks = []
    for i, token in enumerate(tokens):
        tasks.append(asyncio.create_task(
            learner(url, token, all_takes[i % len(all_takes)], seconds, rtts)
        ))  # fmt: skip
        await asyncio.sleep(0.002)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    ok = [r for r in results if not isinstance(r, BaseException)]
    sent = sum(r[0] for r in ok)
    answered = sum(r[1] for r in ok)
    a = np.array(rtts) if rtts else np.array([np.nan])
    return {
        "sessions": len(tokens),
        "failed_sessions": len(failed),
        "notes_sent": sent,
        "notes_per_s": round(sent / seconds, 1),
        "lost": sent - answered,
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(np.max(a)), 2),
        "errors": sorted({f"{type(e).__name__}: {e}" for e in failed}),
    }


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
    times = os.times()
    return {"bench_client": times.user + times.system} | {k: cpu_tree_s(v) for k, v in pids.items()}


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
             "AUTH_JWKS_URL": jwks.url, "LOG_LEVEL": "WARNING", "WS_IDLE_TIMEOUT_S": "600"},
            extra_args=[] if args.deflate else ["--ws-per-message-deflate", "false"],
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
            all_takes = takes()
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
                before, wall = cpu_all(pids), time.perf_counter()
                result = await round_(url, tokens, all_takes, args.seconds)
                wall = time.perf_counter() - wall
                after = cpu_all(pids)
                # share of one core each process used during the round: where the time goes
                result["cpu_share_of_one_core"] = {
                    k: round((after[k] - before[k]) / wall, 3) for k in after
                }
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
            "python": platform.python_version(),
        },
        "through_gateway": proxy is not None,
        "permessage_deflate": args.deflate,
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
        "--no-deflate",
        dest="deflate",
        action="store_false",
        help="start uvicorn with --ws-per-message-deflate false (compression costs CPU per frame)",
    )
    p.add_argument("--direct", action="store_true", help="straight to ai-scoring, no nginx")
    p.add_argument("--keep-rising", action="store_true", help="go on past the p99 target")
    args = p.parse_args()
    result = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ws-load-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
