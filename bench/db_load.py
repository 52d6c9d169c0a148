"""Load on db's read endpoints: an open-loop (fixed-rate) load generator, latency from the
scheduled send time.

Starts its own SecantusDB, a RabbitMQ vhost, a JWKS and db as a real uvicorn process, records
each learner's scored takes through the real event path, then for each ``--rate`` reads at that
many requests/s for ``--seconds``, spread over the endpoints a learner's app calls and over
``--learners`` learners, while ``--writes-per-s`` new takes arrive as events (each one
invalidates that learner's cached answers). Request k is due at start + k / rate; a request
sent late counts its wait, so a server that falls behind shows it (no coordinated omission).
The client is aiohttp with kept-alive connections in this process, apart from the server's.
Writes bench/results/db-load-<date>[-<variant>]-<rate>rps.json per rate. Run: `make bench-db`
(``BENCH_ARGS="--rate 50 --rate 500 --seconds 20"``).

Variants: ``--mix heavy`` reads the routes that compute most (history filtered by piece and
paged, progress overall and per piece, one performance's report) instead of the app's
everyday mix; ``--cache-ttl 0`` turns db's read cache off, so every read is computed;
``--gateway`` sends the reads through nginx with the rules ``make run`` renders
(deploy/local's plan), as a browser reaches db (``/api/db/...``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from sonata_contracts.ai_scoring import PerformanceScored
from sonata_testing import (
    JwksServer,
    RabbitVhost,
    SecantusServer,
    ServiceProcess,
    SigningKey,
    TokenFactory,
    eventually,
    publish_events,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "services" / "db" / "tests" / "integration"))

from db_api_support import grant
from db_takes import scored, take

from bench.gateway import NGINX, service, start_gateway

ROOT = Path(__file__).resolve().parents[1]
GATEWAY_PREFIX = service("db").prefix  # /api/db

RESULTS = Path(__file__).parent / "results"
TWINKLE = "catalogue-twinkle-theme"
CONCURRENCY = 64  # requests in flight at most
DROPS = [0, 3, 5, 8, 12, 0, 3, 5, 8, 12]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def endpoints(performance_id: str, mix: str) -> list[str]:
    if mix == "heavy":
        return [
            f"/v1/me/performances?piece_id={TWINKLE}&page=2&page_size=3",
            f"/v1/me/performances?piece_id={TWINKLE}&page_size=5",
            "/v1/me/progress",
            f"/v1/me/progress/{TWINKLE}",
            f"/v1/me/performances/{performance_id}",
        ]
    return [
        "/v1/pieces?scope=public",
        "/v1/pieces?q=minuet",
        f"/v1/pieces/{TWINKLE}",
        "/v1/me/performances",
        "/v1/me/progress",
        f"/v1/me/progress/{TWINKLE}",
        f"/v1/me/performances/{performance_id}",
        "/v1/me/assignments",
    ]


def route_of(path: str) -> str:
    """The route template a path belongs to, so ids do not split the figures."""
    path = path.removeprefix(GATEWAY_PREFIX)
    base = path.split("?")[0]
    if base.startswith("/v1/me/performances/"):
        return "/v1/me/performances/{id}"
    if base.startswith("/v1/me/progress/"):
        return "/v1/me/progress/{piece_id}"
    if base.startswith("/v1/pieces/"):
        return "/v1/pieces/{piece_id}"
    if base == "/v1/me/performances" and "piece_id=" in path:
        return "/v1/me/performances?piece_id= (paged)" if "page=" in path else path.split("&")[0]
    return path  # the two searches stay apart


class Learner:
    def __init__(self, name: str, token: str) -> None:
        self.name = name
        self.headers = {"Authorization": f"Bearer {token}"}
        self.paths: list[str] = []


def cpu_seconds(pid: int, with_children: bool = False) -> float:
    """CPU seconds of a process, and with its children (nginx's master and its worker)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    if not with_children:
        return own
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return own + sum(cpu_seconds(int(c)) for c in children)


def gateway(db_port: int, var: Path) -> tuple[subprocess.Popen[bytes], str]:
    """nginx with the gateway `make run` renders, in front of this db; its base URL."""
    proc, port = start_gateway(var, {"db": db_port})
    return proc, f"http://127.0.0.1:{port}"


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


class CpuWatch:
    """CPU used by each named process, and by the whole machine, between start and stop."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = {name: self.cpu(name) for name in pids}
        self.busy0 = machine_busy()
        self.t0 = time.perf_counter()

    def cpu(self, name: str) -> float:
        return cpu_seconds(self.pids[name], with_children=name == "nginx")

    def shares(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        busy1 = machine_busy()
        used = {name: round((self.cpu(name) - self.before[name]) / wall, 3) for name in self.pids}
        machine = (busy1[0] - self.busy0[0]) / max(1.0, busy1[1] - self.busy0[1])
        cpus = os.cpu_count() or 1
        return {
            "unit": "cores (1.0 = one core busy the whole run)",
            **used,
            "machine_busy_cores": round(machine * cpus, 3),
            "others_cores": round(machine * cpus - sum(used.values()), 3),
        }


async def seed(
    base: str,
    amqp_url: str,
    learners: list[Learner],
    user_ids: list[str],
    takes: int,
    paths: Any,
) -> None:
    """Each learner's takes over the past days; every other learner has a plan with full
    reports (their report reads carry the whole engine report, ~55 kB)."""
    for user in user_ids[::2]:
        await grant(amqp_url, user, "premium_monthly")
    now = datetime.now(UTC)
    reports = [take("twinkle-theme", drop) for drop in DROPS[:takes]]
    for learner, user in zip(learners, user_ids, strict=True):
        events = [
            scored(user, TWINKLE, report, now - timedelta(days=k))
            for k, report in enumerate(reports)
        ]
        await publish_events(amqp_url, events)
        learner.paths = paths(str(events[0].performance_id))
    async with aiohttp.ClientSession(base) as http:
        for learner in learners:

            async def recorded(learner: Learner = learner) -> bool:
                async with http.get("/v1/me/performances", headers=learner.headers) as r:
                    return bool((await r.json())["total"] == takes)

            await eventually(recorded, f"{learner.name}'s seeded takes", within=120)


async def sequential(base: str, learner: Learner) -> dict[str, float]:
    """Each route alone, one request at a time: first (computed) and then (from the cache)."""
    out: dict[str, float] = {}
    async with aiohttp.ClientSession(base, headers=learner.headers) as http:
        for path in learner.paths:
            begin = time.perf_counter()
            async with http.get(path) as r:
                await r.read()
            first = (time.perf_counter() - begin) * 1000
            begin = time.perf_counter()
            for _ in range(20):
                async with http.get(path) as r:
                    await r.read()
            again = (time.perf_counter() - begin) / 20 * 1000
            out[f"{route_of(path)} first"] = round(first, 2)
            out[f"{route_of(path)} again"] = round(again, 2)
    return out


async def warm(base: str, learners: list[Learner]) -> None:
    """Every learner's routes read once, so the figures are of the steady state (answers kept,
    then dropped by new takes or expiring), not of the first read of each."""
    async with aiohttp.ClientSession(base) as http:
        for learner in learners:
            for path in learner.paths:
                async with http.get(path, headers=learner.headers) as r:
                    await r.read()


async def writer(amqp_url: str, user_ids: list[str], per_s: float, stop: asyncio.Event) -> int:
    """New takes arriving while the reads go on, round-robin over the learners."""
    if per_s <= 0:
        return 0
    report = take("twinkle-theme", 5)
    sent = 0
    while not stop.is_set():
        event: PerformanceScored = scored(
            user_ids[sent % len(user_ids)], TWINKLE, report, datetime.now(UTC)
        )
        await publish_events(amqp_url, [event])
        sent += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1 / per_s)
    return sent


def schedule(learners: list[Learner], total: int) -> Iterator[tuple[int, Learner, str]]:
    routes = len(learners[0].paths)
    for k in range(total):
        learner = learners[(k // routes) % len(learners)]
        yield k, learner, learner.paths[k % routes]


async def drive(base: str, learners: list[Learner], rate: float, seconds: float) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as http:
        total = int(rate * seconds)
        slots = schedule(learners, total)
        start = time.perf_counter()

        async def worker() -> None:
            for k, learner, path in slots:
                due = start + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    async with http.get(path, headers=learner.headers) as r:
                        await r.read()
                        status = str(r.status)
                except (aiohttp.ClientError, TimeoutError):
                    status = "timeout or error"
                statuses[status] = statuses.get(status, 0) + 1
                latency = (time.perf_counter() - due) * 1000
                latencies.setdefault(route_of(path), []).append(latency)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - start
    every = np.array([v for vs in latencies.values() for v in vs])

    def pct(values: Any) -> dict[str, float]:
        return {f"p{q}_ms": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)} | {
            "max_ms": round(float(np.max(values)), 2)
        }

    return {
        "requests": int(every.size),
        "achieved_rate_per_s": round(every.size / wall, 1),
        "statuses": dict(sorted(statuses.items())),
        **pct(every),
        "per_endpoint": {k: {"requests": len(v), **pct(v)} for k, v in sorted(latencies.items())},
    }


async def cache_counts(base: str) -> dict[str, float]:
    async with aiohttp.ClientSession(base) as http, http.get("/metrics") as r:
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("sonata_db_read_cache_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            out[result] = float(line.rsplit(" ", 1)[1])
    return out


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    key = SigningKey()
    tokens = TokenFactory(key)
    user_ids = [f"bench-learner-{k}" for k in range(args.learners)]
    learners = [Learner(u, tokens.sign(tokens.claims(sub=u))) for u in user_ids]
    results = []
    prefix = GATEWAY_PREFIX if args.gateway else ""

    def paths(performance_id: str) -> list[str]:
        return [prefix + p for p in endpoints(performance_id, args.mix)]

    with SecantusServer() as mongo, RabbitVhost() as vhost, JwksServer([key.jwk]) as jwks:
        env = {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo.url,
            "MONGODB_DB": "library_bench",
            "AMQP_URL": vhost.url,
            "AUTH_JWKS_URL": jwks.url,
            "LOG_LEVEL": "WARNING",
            "READ_CACHE_TTL_S": str(args.cache_ttl),
        }
        service = ServiceProcess("db", "sonata_db.main:create_app", env).start(timeout=120)
        proxy: subprocess.Popen[bytes] | None = None
        try:
            assert service.proc is not None
            assert mongo._proc is not None
            pids = {
                "db": service.proc.pid,
                "secantusdb": mongo._proc.pid,
                "load_client": os.getpid(),
            }
            base = service.base_url
            if args.gateway:
                var = Path(f"/tmp/sonata-db-load-{uuid.uuid4().hex[:6]}")
                proxy, base = gateway(service.port, var)
                pids["nginx"] = proxy.pid
            await seed(service.base_url, vhost.url, learners, user_ids, args.takes, paths)
            alone = await sequential(base, learners[0])
            print("one at a time (ms):", json.dumps(alone), flush=True)
            await warm(base, learners)
            for rate in args.rate:
                load_before = loadavg()
                counts_before = await cache_counts(service.base_url)
                stop = asyncio.Event()
                writes = asyncio.create_task(writer(vhost.url, user_ids, args.writes_per_s, stop))
                watch = CpuWatch(pids)
                figures = await drive(base, learners, rate, args.seconds)
                cpu = watch.shares()
                stop.set()
                written = await writes
                counts = await cache_counts(service.base_url)
                hits, stale, misses = (
                    counts.get(k, 0) - counts_before.get(k, 0) for k in ("hit", "stale", "miss")
                )
                result = {
                    "benchmark": "db read endpoints",
                    "variant": variant(args),
                    "through_gateway": bool(args.gateway),
                    "route_mix": args.mix,
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "loadavg_before": load_before,
                        "loadavg_after": loadavg(),
                    },
                    "target": {"rate_per_s": rate, "p95_ms": 20.0},
                    "met": bool(
                        figures["p95_ms"] <= 20.0 and figures["achieved_rate_per_s"] >= 0.95 * rate
                    ),
                    "seconds": args.seconds,
                    "learners": args.learners,
                    "takes_recorded_each": args.takes,
                    "writes_during_run": written,
                    "read_cache": {
                        "ttl_s": args.cache_ttl,
                        "hits": hits,
                        "stale_given_while_refreshed": stale,
                        "misses": misses,
                        "answered_from_cache": round(
                            (hits + stale) / max(1.0, hits + stale + misses), 3
                        ),
                    },
                    "client": f"aiohttp {aiohttp.__version__}, {CONCURRENCY} connections",
                    "cpu": cpu,
                    "one_at_a_time_ms": alone,
                    **figures,
                }
                print(json.dumps(result, indent=2), flush=True)
                results.append(result)
        finally:
            if proxy is not None:
                proxy.terminate()
                proxy.wait(10)
            service.stop()
    return results


def variant(args: argparse.Namespace) -> str:
    """The file name's variant: empty for the everyday mix, direct, cache on."""
    parts = ["gateway"] if args.gateway else []
    parts += ["heavy"] if args.mix == "heavy" else []
    parts += ["nocache"] if args.cache_ttl == 0 else []
    return "-".join(parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, action="append", help="repeat for several")
    parser.add_argument("--seconds", type=float, default=20.0, help="per rate")
    parser.add_argument("--learners", type=int, default=20)
    parser.add_argument("--takes", type=int, default=8, choices=range(1, len(DROPS) + 1))
    parser.add_argument("--writes-per-s", type=float, default=1.0)
    parser.add_argument("--cache-ttl", type=float, default=30.0, help="db's READ_CACHE_TTL_S")
    parser.add_argument("--mix", choices=["app", "heavy"], default="app", help="routes read")
    parser.add_argument("--gateway", action="store_true", help="through nginx (/api/db/...)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    args.rate = args.rate or [500.0]
    if args.gateway and not Path(NGINX).exists():
        raise SystemExit(f"--gateway needs nginx at {NGINX}")
    # A terminated run still stops the processes it started (the `finally` blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    RESULTS.mkdir(exist_ok=True)
    for result in asyncio.run(run(args)):
        if args.no_write:
            continue
        rate = result["target"]["rate_per_s"]
        name = "-".join(
            part
            for part in ("db-load", datetime.now(UTC).date().isoformat(), result["variant"])
            if part
        )
        out = RESULTS / f"{name}-{rate:.0f}rps.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {out}")
