"""`sonata-bridge`: a MIDI keyboard (or a MIDI file played at real speed) to a live session.

    sonata-bridge --gateway http://127.0.0.1:8080 --email me@example.com --piece PIECE_ID \
        --midi take.mid [--speed 1.0] [--hands both] [--bars 5-12] [--tempo 80]
    sonata-bridge ... --port "Digital Piano"       # needs python-rtmidi

The password comes from SONATA_PASSWORD or a prompt. Ctrl-C stops playing and scores what was
played; a second Ctrl-C gives up. Exit codes: 0 finished, 2 bad arguments, 3 login failed, 4 the
session was refused or the connection failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import websockets
from sonata_engine import EngineError, load_performance
from websockets.typing import Subprotocol

from sonata_scoring.domain.protocol import PROTOCOL, encode_binary

# events this close together on the wall clock travel in one message: at most 50 messages a
# second whatever the speed, well inside the server's rate limit
BATCH_WINDOW_S = 0.02


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sonata-bridge", description=__doc__.splitlines()[0])
    p.add_argument("--gateway", default="http://127.0.0.1:8080")
    p.add_argument("--email", required=True)
    p.add_argument("--piece", required=True, help="piece id")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--midi", type=Path, help="a MIDI file, replayed at real speed")
    src.add_argument("--port", help="a MIDI input port name (python-rtmidi)")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--hands", choices=("both", "right", "left"), default="both")
    p.add_argument("--bars", help="first-last printed bar numbers, e.g. 5-12")
    p.add_argument("--tempo", type=float, default=100.0, help="practice tempo, percent")
    p.add_argument("--mode", choices=("performance", "wait"), default="performance")
    p.add_argument("--strictness", type=float, default=0.5)
    args = p.parse_args(argv)
    if args.speed <= 0:
        p.error("--speed must be positive")
    if args.bars is not None:
        first, _, last = args.bars.partition("-")
        if not (first.isdigit() and last.isdigit() and int(first) <= int(last)):
            p.error("--bars is FIRST-LAST, e.g. 5-12")
        args.bars = {"first": int(first), "last": int(last)}
    return args


def _login(gateway: str, email: str, password: str) -> str:
    r = httpx.post(
        f"{gateway}/api/auth/v1/login", json={"email": email, "password": password}, timeout=15
    )
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code != 200 or body.get("status") != "ok":
        raise SystemExit(f"login failed: {r.status_code} {body.get('detail') or body}")
    return str(body["access_token"])


async def _file_events(path: Path, speed: float) -> AsyncIterator[list[dict[str, Any]]]:
    notes = load_performance(path).notes
    events: list[dict[str, Any]] = []
    for n in notes:
        pitch, on = int(n["pitch"]), float(n["onset_s"])
        events.append({"t": on, "kind": "on", "pitch": pitch, "velocity": int(n["velocity"])})
        events.append({"t": float(n["offset_s"]), "kind": "off", "pitch": pitch})
    events.sort(key=lambda e: (e["t"], e["kind"] == "on"))
    start = time.monotonic()
    i = 0
    while i < len(events):
        j = i + 1
        while j < len(events) and events[j]["t"] - events[i]["t"] <= BATCH_WINDOW_S * speed:
            j += 1
        # the file's clock, played out on the wall clock: the device time is the file's time
        delay = start + events[i]["t"] / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield events[i:j]
        i = j


# what a keyboard sends that the session uses: keys and pedals (not its clock, active sensing,
# program changes and the like, which would use a frame and a seq each for nothing)
FORWARDED = frozenset({"note_on", "note_off", "control_change"})


class PortFrames:
    """MIDI messages from an input port (mido calls `on_message` from its own thread) to the
    records of binary frames: (device time, raw MIDI bytes), batched as they come."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    def on_message(self, message: Any, at: float | None = None) -> None:
        if message.type not in FORWARDED:
            return
        record = (time.monotonic() if at is None else at, bytes(message.bytes()))
        self.loop.call_soon_threadsafe(self.queue.put_nowait, record)

    async def batches(self) -> AsyncIterator[list[tuple[float, bytes]]]:
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            yield batch


async def _port_frames(name: str) -> AsyncIterator[list[tuple[float, bytes]]]:
    try:
        import mido
    except ImportError as exc:  # mido ships with the engine; rtmidi is the optional part
        raise SystemExit(f"no MIDI input support: {exc}") from None
    frames = PortFrames(asyncio.get_running_loop())
    try:
        port = mido.open_input(name, callback=frames.on_message)
    except (OSError, ImportError) as exc:
        raise SystemExit(f"cannot open MIDI port {name!r}: {exc}") from None
    try:
        async for batch in frames.batches():
            yield batch
    finally:
        port.close()


def _show(msg: dict[str, Any]) -> None:
    kind = msg["type"]
    if kind in ("judged", "missed"):
        for j in msg["judgements"]:
            pos = j.get("position") or {}
            where = f"bar {pos.get('measure', '?'):>3} beat {pos.get('beat', 0):<4g}"
            timing = f" {j['timing_ms']:+.0f} ms" if j.get("timing_ms") is not None else ""
            print(f"{where} {j['kind']:<11} {j.get('timing', '')}{timing}  {j['reason']}")
    elif kind == "finished":
        print(f"\noverall {msg['overall']:.1f}  {msg['subscores']}")
        for text in msg["findings"]:
            print(f"  - {text}")
        print(f"performance {msg['performance_id']}")
    elif kind in ("error", "refused"):
        print(f"{kind}: {msg['code']}: {msg['detail']}", file=sys.stderr)


async def _session(args: argparse.Namespace, token: str) -> int:
    parts = urlsplit(args.gateway)
    ws_url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}/ws/v1/sessions"
    offered = [Subprotocol(PROTOCOL), Subprotocol(f"bearer.{token}")]
    async with websockets.connect(ws_url, subprotocols=offered) as ws:
        start = {
            "type": "start",
            "seq": 0,
            "piece_id": args.piece,
            "hands": args.hands,
            "tempo_percent": args.tempo,
            "mode": args.mode,
            "strictness": args.strictness,
        }
        if args.bars:
            start["bars"] = args.bars
        await ws.send(json.dumps(start))
        reply = json.loads(await ws.recv())
        if reply["type"] != "started":
            _show(reply)
            return 4
        print(f"session {reply['session_id']}: play!")
        finished = asyncio.get_running_loop().create_future()

        async def read() -> None:
            try:
                async for raw in ws:
                    msg = json.loads(raw)
                    _show(msg)
                    final = msg["type"] == "finished" or msg.get("code") == "nothing_to_score"
                    if final and not finished.done():
                        finished.set_result(msg)
            except websockets.ConnectionClosed as exc:
                if not finished.done():
                    finished.set_exception(exc)

        reader = asyncio.create_task(read())
        seq = 0
        try:
            if args.midi is not None:
                async for batch in _file_events(args.midi, args.speed):
                    seq += 1
                    await ws.send(json.dumps({"type": "notes", "seq": seq, "events": batch}))
            else:
                async for frames in _port_frames(args.port):
                    seq += 1
                    await ws.send(encode_binary(seq, frames))
        except asyncio.CancelledError:
            # Ctrl-C: stop playing and score what was played (a second Ctrl-C gives up)
            task = asyncio.current_task()
            if task is None or task.uncancel() > 0:
                raise
            print("\nstopped: scoring what was played", file=sys.stderr)
        await ws.send(json.dumps({"type": "finish", "seq": seq + 1}))
        try:
            outcome = await asyncio.wait_for(finished, 60)
        finally:
            reader.cancel()
        if outcome["type"] != "finished":
            return 4
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _args(argv)
    try:
        password = os.environ.get("SONATA_PASSWORD") or getpass.getpass("password: ")
        token = _login(args.gateway, args.email, password)
    except (httpx.HTTPError, SystemExit) as exc:
        print(exc, file=sys.stderr)
        return 3
    except (KeyboardInterrupt, EOFError):
        print("\ninterrupted before logging in", file=sys.stderr)
        return 130
    try:
        return asyncio.run(_session(args, token))
    except (OSError, websockets.WebSocketException, EngineError, TimeoutError) as exc:
        print(f"session failed: {exc}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        print("\ninterrupted: the session stays open on the server to resume, or is finished "
              "on its own later", file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())
