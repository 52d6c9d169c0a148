"""Live sessions under load: N learners replaying real Vienna 4x22 takes at real speed.

Starts its own SecantusDB, a RabbitMQ vhost, a JWKS, ai-scoring as a real uvicorn process and,
when nginx is installed, the gateway rendered by deploy/local's plan; publishes the Schubert
piece and paid entitlements, then for each N in ``--sessions`` opens N WebSockets, starts a
session on each and plays the takes (each note-on and note-off at its own time, one message
each) for ``--seconds``. The round trip is from sending a message with a note-on to its
`judged` answer; a message never answered within 5 s of the end is lost. Stops rising once p99
passes ``--p99-ms`` (``--keep-rising`` goes on, to see where it saturates). The learners run in
one client process on uvloop that does next to nothing per message: each WebSocket is a raw
asyncio protocol, every frame is encoded and masked before the round, a send is a timer
callback writing bytes, and a reply is read only as far as its type and seq (``--binary`` sends
the notes as the protocol's raw MIDI frames instead of JSON). Each round records every
process's CPU (share of a core, and ms per note, which holds whatever else the machine was
doing). Writes bench/results/ws-load-<date>.json. Run: `make bench-ws`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing
import os
import platform
import struct
import subprocess
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import websockets
from prometheus_client.parser import text_string_to_metric_families
from sonata_contracts.db import PiecePublished
from sonata_contracts.payment import EntitlementsChanged, Limits
from sonata_engine import load_performance, load_score, score_to_dict
from sonata_scoring.domain.protocol import encode_binary
from sonata_testing import (
    JwksServer,
    RabbitVhost,
    SecantusServer,
    ServiceProcess,
    SigningKey,
    TokenFactory,
    publish_events,
)

from bench.gateway import NGINX, ROOT, start_gateway

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


# (device time, is a note-on, the frame as sent): encoded and masked once, before any round
Script = list[tuple[float, bool, bytes]]


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client-to-server WebSocket frame (RFC 6455 5.2), built once per message."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)
    return head + mask + masked.tobytes()


def _message(seq: int, e: dict[str, Any], binary: bool) -> bytes:
    if not binary:
        return client_frame(0x1, json.dumps({"type": "notes", "seq": seq, "events": [e]}).encode())
    midi = (
        bytes([0x90, e["pitch"], e["velocity"]])
        if e["kind"] == "on"
        else bytes([0x80, e["pitch"], 0])
    )
    return client_frame(0x2, encode_binary(seq, [(e["t"], midi)]))


def scripts(all_takes: list[list[dict[str, Any]]], seconds: float, binary: bool) -> list[Script]:
    return [
        [
            (e["t"], e["kind"] == "on", _message(seq, e, binary))
            for seq, e in enumerate(take, start=1)
            if e["t"] <= seconds
        ]
        for take in all_takes
    ]


JUDGED = b'{"type":"judged","seq":'
TIMER_SLACK_S = 0.001
_PONG_EMPTY = 0xA


class Learner(asyncio.Protocol):
    """One learner's WebSocket, as cheap as a client can be: the handshake and the frames
    by hand on the event loop's transport, every message encoded before the round, each send
    a timer callback (no task, no await per message), and a reply read only as far as the
    `judged` prefix and its seq (the server writes type and seq first)."""

    def __init__(self, script: Script, rtts: list[float], key: bytes) -> None:
        self.script = script
        self.rtts = rtts
        self.key = base64.b64encode(key)
        self.buf = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self.started: asyncio.Future[None] = self.loop.create_future()
        self.drained: asyncio.Future[None] = self.loop.create_future()
        self.gone: asyncio.Future[None] = self.loop.create_future()
        self.sent: dict[int, float] = {}  # seq of a note-on message -> when it left
        self.total = 0
        self.answered = 0
        self.next = 0
        self.t0 = 0.0
        self.sending_done = False

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        for f in (self.opened, self.started):
            if not f.done():
                f.set_exception(ConnectionError("connection closed"))
        if not self.gone.done():
            self.gone.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            accept = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest()).decode()
            if not head.startswith("HTTP/1.1 101") or accept not in head:
                self.opened.set_exception(ConnectionError(head.split("\r\n", 1)[0]))
                return
            self.upgraded = True
            self.opened.set_result(None)
        at, n = 0, len(buf)
        while n - at >= 2:
            b0, b1 = buf[at], buf[at + 1] & 0x7F
            h = 2
            if b1 == 126:
                if n - at < 4:
                    break
                b1, h = int.from_bytes(buf[at + 2 : at + 4], "big"), 4
            elif b1 == 127:
                if n - at < 10:
                    break
                b1, h = int.from_bytes(buf[at + 2 : at + 10], "big"), 10
            if n - at < h + b1:
                break
            payload = buf[at + h : at + h + b1]
            at += h + b1
            self._frame(b0 & 0x0F, payload, now)
        del buf[:at]

    # -- frames --------------------------------------------------------------------------------
    def _frame(self, opcode: int, payload: bytearray, now: float) -> None:
        if opcode == 0x1:
            if payload.startswith(JUDGED):
                end = payload.find(b",", len(JUDGED))
                sent = self.sent.pop(int(payload[len(JUDGED) : end]), None)
                if sent is not None:
                    self.rtts.append((now - sent) * 1000)
                    self.answered += 1
                    if self.sending_done and not self.sent and not self.drained.done():
                        self.drained.set_result(None)
            elif not self.started.done() and json.loads(payload)["type"] == "started":
                self.started.set_result(None)
        elif opcode == 0x9 and self.transport is not None:  # ping: pong with its payload
            self.transport.write(client_frame(_PONG_EMPTY, bytes(payload)))
        elif opcode == 0x8 and self.transport is not None:
            self.transport.close()

    def play(self) -> None:
        self.t0 = self.loop.time()
        self._fire()

    def _fire(self) -> None:
        """Send every message that is due, then sleep until the next one's time."""
        script, transport = self.script, self.transport
        if transport is None or transport.is_closing():
            self.sending_done = True
            return
        # uvloop's timers count whole milliseconds and may fire up to one early: what is due
        # within that counts as due (else the callback would spin until the clock moves on)
        now = self.loop.time() - self.t0 + TIMER_SLACK_S
        while self.next < len(script) and script[self.next][0] <= now:
            _, is_on, frame = script[self.next]
            self.next += 1
            if is_on:
                self.sent[self.next] = time.perf_counter()
                self.total += 1
            transport.write(frame)
        if self.next < len(script):
            self.loop.call_at(self.t0 + script[self.next][0], self._fire)
            return
        self.sending_done = True
        if not self.sent and not self.drained.done():
            self.drained.set_result(None)


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


async def learner(
    host: str, port: int, token: str, script: Script, rtts: list[float]
) -> tuple[int, int]:
    """(note-on messages sent, answered)."""
    loop = asyncio.get_running_loop()
    key = os.urandom(16)
    transport, me = await loop.create_connection(lambda: Learner(script, rtts, key), host, port)
    try:
        transport.write(
            (
                f"GET /ws/v1/sessions HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {me.key.decode()}\r\n"
                f"Sec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: sonata.v1, bearer.{token}\r\n\r\n"
            ).encode()
        )
        await asyncio.wait_for(me.opened, 10)
        transport.write(
            client_frame(0x1, json.dumps({"type": "start", "seq": 0, "piece_id": PIECE}).encode())
        )
        await asyncio.wait_for(me.started, 10)
        me.play()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(me.drained), script[-1][0] + 5 if script else 5)
        return me.total, me.answered
    finally:
        if not transport.is_closing():
            transport.write(client_frame(0x8, struct.pack(">H", 1000)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(me.gone), 2)
        transport.close()


async def _learners(
    host: str,
    port: int,
    tokens: list[str],
    picks: list[int],
    all_scripts: list[Script],
    gap_s: float,
) -> dict[str, Any]:
    rtts: list[float] = []
    tasks = []
    # start the learners a little apart, as real ones arrive, not in one instant
    for token, pick in zip(tokens, picks, strict=True):
        tasks.append(asyncio.create_task(learner(host, port, token, all_scripts[pick], rtts)))
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


def _client_process(host: str, port: int, tokens: list[str], picks: list[int], gap_s: float) -> Any:
    """One bench client process: its share of the learners on its own uvloop event loop."""
    import uvloop

    return uvloop.run(_learners(host, port, tokens, picks, _SCRIPTS, gap_s))


async def round_(
    host: str, port: int, tokens: list[str], seconds: float, clients: int, gap_s: float
) -> Any:
    """N learners in `clients` processes forked for the round (one by default: the client
    does next to nothing per message, and a fresh process starts each round with no state)."""
    picks = [i % len(_SCRIPTS) for i in range(len(tokens))]
    loop = asyncio.get_running_loop()
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(clients, mp_context=fork) as pool:
        parts = await asyncio.gather(*[
            loop.run_in_executor(
                pool, _client_process, host, port, tokens[k::clients], picks[k::clients],
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
    if not Path(NGINX).exists():
        return None, scoring.port
    return start_gateway(var, {"ai-scoring": scoring.port})


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
            _SCRIPTS[:] = scripts(takes(), args.seconds, args.binary)
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
                    "127.0.0.1", port, tokens, args.seconds, args.clients,
                    args.arrival_gap_ms / 1000,
                )  # fmt: skip
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
        "bench_client": "raw asyncio protocol on uvloop, frames encoded before the round",
        "note_frames": "binary raw MIDI" if args.binary else "JSON",
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
    p.add_argument(
        "--clients",
        type=int,
        default=2,
        help="bench client processes (one per core: one event loop holding every connection "
        "adds its own queueing to the round trip it times)",
    )
    p.add_argument(
        "--binary",
        action="store_true",
        help="send the notes as raw MIDI binary frames instead of JSON notes messages",
    )
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
