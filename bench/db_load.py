"""Load on db's read endpoints: a fixed-rate asyncio load generator (64 requests in flight).

Starts its own SecantusDB, a RabbitMQ vhost, a JWKS and db as a real uvicorn process, records a
learner's scored takes through the real event path, then reads at ``--rate`` requests/s for
``--seconds``, spread over the endpoints a learner's app calls. Latency is measured from the
scheduled send time, so a server that falls behind shows it. Writes
bench/results/db-load-<date>-<rate>rps.json. Run: `make bench-db` (or `python -m bench.db_load`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
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

from db_takes import scored, take

RESULTS = Path(__file__).parent / "results"
TWINKLE = "catalogue-twinkle-theme"
CONCURRENCY = 64  # requests in flight at most


def endpoints(performance_id: str) -> list[str]:
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


async def seed(base: str, amqp_url: str, user: str, headers: dict[str, str], takes: int) -> str:
    now = datetime.now(UTC)
    events = [
        scored(user, TWINKLE, take("twinkle-theme", drop), now - timedelta(days=k))
        for k, drop in enumerate([0, 3, 5, 8, 12, 0, 3, 5, 8, 12][:takes])
    ]
    await publish_events(amqp_url, events)
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:

        async def recorded() -> bool:
            r = await http.get("/v1/me/performances")
            return bool(r.json()["total"] == len(events))

        await eventually(recorded, "the seeded takes", within=60)
    return str(events[0].performance_id)


async def drive(
    base: str, headers: dict[str, str], paths: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    latencies: dict[str, list[float]] = {p.split("?")[0]: [] for p in paths}
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=10) as http:
        sequential: dict[str, float] = {}
        for path in paths:  # warm every route, then time each alone
            await http.get(path)
            begin = time.perf_counter()
            for _ in range(5):
                await http.get(path)
            sequential[path.split("?")[0]] = round((time.perf_counter() - begin) / 5 * 1000, 2)
        print("one at a time (ms):", json.dumps(sequential), flush=True)

        start = time.perf_counter()
        total = int(rate * seconds)
        slots = iter(range(total))

        async def worker() -> None:
            # Request k is due at start + k / rate; a worker that is late sends at once, and
            # the wait counts in its latency, so falling behind shows in the figures.
            for k in slots:
                due = start + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                path = paths[k % len(paths)]
                try:
                    r = await http.get(path)
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0  # no answer within the client's timeout
                statuses[status] = statuses.get(status, 0) + 1
                latencies[path.split("?")[0]].append((time.perf_counter() - due) * 1000)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - start
    every = np.array([v for vs in latencies.values() for v in vs])
    return {
        "requests": int(every.size),
        "achieved_rate_per_s": round(every.size / wall, 1),
        "statuses": {str(k) if k else "timeout": v for k, v in sorted(statuses.items())},
        "p50_ms": round(float(np.percentile(every, 50)), 2),
        "p95_ms": round(float(np.percentile(every, 95)), 2),
        "p99_ms": round(float(np.percentile(every, 99)), 2),
        "sequential_ms": sequential,
        "per_endpoint_p95_ms": {
            k: round(float(np.percentile(v, 95)), 2) for k, v in latencies.items() if v
        },
    }


async def main(rate: float, seconds: float, takes: int) -> dict[str, Any]:
    key = SigningKey()
    tokens = TokenFactory(key)
    user = "bench-learner"
    headers = {"Authorization": f"Bearer {tokens.sign(tokens.claims(sub=user))}"}
    with SecantusServer() as mongo, RabbitVhost() as vhost, JwksServer([key.jwk]) as jwks:
        env = {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo.url,
            "MONGODB_DB": "library_bench",
            "AMQP_URL": vhost.url,
            "AUTH_JWKS_URL": jwks.url,
            "LOG_LEVEL": "WARNING",
        }
        service = ServiceProcess("db", "sonata_db.main:create_app", env).start(timeout=120)
        try:
            performance_id = await seed(service.base_url, vhost.url, user, headers, takes)
            figures = await drive(
                service.base_url, headers, endpoints(performance_id), rate, seconds
            )
        finally:
            service.stop()
    return {
        "benchmark": "db read endpoints",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "target": {"rate_per_s": rate, "p95_ms": 20.0},
        "seconds": seconds,
        "takes_recorded": takes,
        **figures,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--takes", type=int, default=10)
    args = parser.parse_args()
    # A terminated run still stops the processes it started (the `finally` blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    result = asyncio.run(main(args.rate, args.seconds, args.takes))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"db-load-{datetime.now(UTC).date().isoformat()}-{args.rate:.0f}rps.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")
