"""A real Prometheus (the Debian package) scraping a local fleet, and the load that feeds it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import websockets
from sonata_engine import score_from_dict

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules"
# Grafana's own variables, given the values a short scripted run can fill.
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__range": "5m"}


def find_or_install(binary: str, package: str = "prometheus") -> str:
    """The binary's path; on a fresh machine, root with apt-get installs the package first."""
    found = shutil.which(binary) or (
        f"/usr/bin/{binary}" if os.path.exists(f"/usr/bin/{binary}") else None
    )
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)
        found = shutil.which(binary)
        if found:
            return found
    raise RuntimeError(
        f"{binary} is missing: install the Debian package `{package}` "
        f"(sudo apt-get install -y {package}); the dashboards and alert rules are checked with it"
    )


def scrape_config(targets: dict[str, str]) -> str:
    """The compose scrape jobs pointed at the test's ports, scraped every second."""
    lines = [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "rule_files:",
        f"  - {RULES / '*.yml'}",
        "scrape_configs:",
    ]
    for service, address in targets.items():
        lines += [
            f"  - job_name: {service}",
            "    static_configs:",
            f"      - targets: ['{address}']",
            "        labels:",
            f"          service: {service}",
        ]
    return "\n".join(lines) + "\n"


class Prometheus:
    def __init__(self, binary: str, workdir: Path, port: int, targets: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        config = workdir / "prometheus.yml"
        config.write_text(scrape_config(targets))
        self.argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready in 30 s:\n{self.log_path.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def query(self, expr: str) -> dict[str, Any]:
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = r.json()
        return body

    def api(self, path: str) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/api/v1/{path}", timeout=10).json()
        return body


async def closed_websocket(url: str) -> int | None:
    """Open a live-session socket with no token, send garbage, and return the close code."""
    async with websockets.connect(url, open_timeout=10, close_timeout=5) as ws:
        await ws.send("this is not a protocol frame")
        try:
            while True:
                await asyncio.wait_for(ws.recv(), timeout=10)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            return None


async def publish_malformed(amqp_url: str, routing_key: str) -> None:
    """A message every consumer of `routing_key` must dead-letter: its body is not JSON."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            "domain-events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        await exchange.publish(
            aio_pika.Message(
                b"not json at all",
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(uuid.uuid4()),
                type=routing_key,
            ),
            routing_key=routing_key,
        )


def take(score: dict[str, Any], notes: int) -> list[dict[str, Any]]:
    """The score's first ``notes`` notes played as written, as `notes` message events."""
    events: list[dict[str, Any]] = []
    for note in score_from_dict(score).notes[:notes]:
        on = 0.5 + float(note["onset_s"])
        off = on + max(0.05, float(note["duration_s"]) * 0.9)
        velocity = int(note["velocity_mark"]) or 64
        events.append({"t": on, "kind": "on", "pitch": int(note["pitch"]), "velocity": velocity})
        events.append({"t": off, "kind": "off", "pitch": int(note["pitch"])})
    events.sort(key=lambda e: (e["t"], e["kind"] == "on"))
    return events
