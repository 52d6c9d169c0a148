"""One accepted WebSocket: limits, the conversation, and a bounded queue to a writer task."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from sonata_engine import EngineError
from sonata_kit import Principal, Runtime, ServiceError

from sonata_scoring.domain.clock import Calibration
from sonata_scoring.domain.live import judgement_dict
from sonata_scoring.domain.protocol import (
    Auth,
    ClockReply,
    Control,
    Malformed,
    Message,
    Notes,
    Resume,
    Start,
    Violation,
    parse_binary,
    parse_text,
)
from sonata_scoring.domain.ratelimit import TokenBucket
from sonata_scoring.entrypoints.checkpoints import group_commit
from sonata_scoring.entrypoints.http import free_limits
from sonata_scoring.entrypoints.ticker import ticker
from sonata_scoring.metrics import JUDGEMENTS, LIVE_SESSIONS, WS_CLOSED
from sonata_scoring.service_layer.sessions import (
    LiveHandle,
    Refused,
    SessionGone,
    checkpoint,
    finish_session,
    resume_session,
    start_session,
)
from sonata_scoring.settings import ScoringSettings

log = logging.getLogger("sonata_scoring.ws")
CALIBRATION_PROBES = 5
SEQUENCED = (Notes, Control)
_ACTIVE: dict[str, Connection] = {}  # session id -> the connection driving it here


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        settings: ScoringSettings,
        runtime: Runtime,
        principal: Principal | None,
    ) -> None:
        self.ws = websocket
        self.settings = settings
        self.runtime = runtime
        self.principal = principal
        self.out: asyncio.Queue[str] = asyncio.Queue()
        self.queued_bytes = 0  # what self.out holds: the bound that keeps memory flat
        self.done = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.handle: LiveHandle | None = None
        self.processed = -1  # last seq applied on this connection
        self.flush_lock = asyncio.Lock()
        self.probe_task: asyncio.Task[None] | None = None
        self.calibration: Calibration | None = None
        self.received_at = time.perf_counter()  # when the last message arrived (or the accept)
        self.bucket = TokenBucket(settings.ws_rate_per_s, settings.ws_rate_burst, self.received_at)
        self.last_position: tuple[Any, ...] | None = None  # the last the client was told
        self.commit_pending = False  # waiting in the group commit
        self.commit_slot = -1  # its slot of the group commit's interval, once it has one
        self.touch_due = 0.0  # when a frame next asks the group commit to refresh last_seen_at

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]
        clock = ticker(self.settings.ws_position_interval_s)
        clock.connections.add(self)
        await self.done.wait()
        clock.connections.discard(self)
        for task in (*tasks, self.probe_task):
            if task is not None:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.handle is not None:
            # still listed while the last checkpoint is written, so a resume on another
            # connection waits for it instead of reading the one before
            with suppress(SessionGone, Exception):
                await self._flush()
            if _ACTIVE.get(self.handle.session_id) is self:
                del _ACTIVE[self.handle.session_id]
                LIVE_SESSIONS.dec()
        WS_CLOSED.labels(str(self.close_code or 1006)).inc()
        self.closed.set()
        if self.close_code is not None:
            await self._close()

    def end(self, code: int | None, reason: str = "") -> None:
        if not self.done.is_set():
            self.close_code, self.close_reason = code, reason
            self.done.set()

    async def _close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(self.close_code or 1000, self.close_reason), 1.0)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # already gone
        except TimeoutError:
            # A peer that reads nothing never drains the socket, so even the close frame
            # cannot leave: drop the TCP connection instead of holding its buffers.
            transport = getattr(getattr(self.ws._receive, "__self__", None), "transport", None)
            if transport is not None:
                transport.abort()

    def send(self, kind: str, **fields: Any) -> None:
        self.emit({"type": kind, **fields})

    def emit(self, message: dict[str, Any]) -> None:
        if self.done.is_set():
            return
        # orjson writes compact JSON several times faster than json (keys in order: type, seq)
        text = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        self.queued_bytes += len(text)
        if self.queued_bytes > self.settings.ws_send_buffer_bytes:
            self.end(1008, "client is not reading: send buffer full")
            return
        self.out.put_nowait(text)

    async def _write(self) -> None:
        try:
            while True:
                text = await self.out.get()
                await self.ws.send_text(text)
                self.queued_bytes -= len(text)
        except (RuntimeError, OSError, WebSocketDisconnect):
            self.end(None)

    # -- reading --------------------------------------------------------------------------------
    async def _read(self) -> None:
        # no timeout per receive (a timer per message): the process's ticker ends idle ones
        try:
            while not self.done.is_set():
                raw = await self.ws.receive()
                if raw["type"] == "websocket.disconnect":
                    self.end(None)
                    return
                self.received_at = time.perf_counter()
                if self.received_at >= self.touch_due and self.handle is not None:
                    # any frame, a ping too, keeps the session from being taken for abandoned
                    self.touch_due = self.received_at + self._touch_after_s / 2
                    self._schedule_flush()
                await self._receive(raw)
        except Violation as exc:
            self.end(exc.close_code, str(exc))
        except Exception:
            log.exception("live connection failed")
            self.end(1011, "internal error")

    async def _receive(self, raw: Mapping[str, Any]) -> None:
        text, data = raw.get("text"), raw.get("bytes")
        limit = self.settings.ws_max_message_bytes
        size = len(text) if text is not None else len(data or b"")
        if text is not None and size * 4 > limit:  # UTF-8 is at most 4 bytes a character
            size = len(text.encode())
        if size > limit:
            raise Violation(f"message of {size} bytes over {limit}", 1009)
        if not self.bucket.take(self.received_at):
            raise Violation(f"more than {self.settings.ws_rate_per_s:g} messages a second")
        try:
            if text is not None:
                message: Message = parse_text(text, self.settings.ws_max_events_per_message)
            else:
                message = parse_binary(data or b"")
            if self.principal is None and not isinstance(message, Auth):
                raise Violation("authenticate first: subprotocol bearer.<token> or an auth message")
            await self._dispatch(message)
        except Malformed as exc:
            if self.principal is None:
                raise Violation(f"authenticate first ({exc})") from None
            self.error(exc.code, str(exc), exc.seq)

    def error(self, code: str, detail: str, seq: int | None = None, **extra: Any) -> None:
        self.send("error", seq=seq, code=code, detail=detail, **extra)

    # -- the conversation -----------------------------------------------------------------------
    async def _dispatch(self, m: Message) -> None:
        if isinstance(m, Auth):
            await self._auth(m)
        elif isinstance(m, Control) and m.kind == "ping":
            self.send("pong", seq=m.seq, server_time=time.time())
        elif isinstance(m, ClockReply):
            self._clock(m)
        elif isinstance(m, Start | Resume):
            if self.handle is not None:
                raise Malformed("a session is already open on this connection", m.seq, "in_session")
            await (self._start(m) if isinstance(m, Start) else self._resume(m))
        elif self.handle is None:
            self.error("no_session", "start or resume a session first", m.seq)
        elif m.seq <= self.processed:
            self.send("ack", seq=self.handle.last_seq, duplicate=m.seq)
        elif m.seq != self.processed + 1:
            self.error(
                "out_of_order",
                f"expected seq {self.processed + 1}",
                m.seq,
                expected=self.processed + 1,
            )
        else:
            self.processed = m.seq
            await self._sequenced(m, self.handle)
            self._schedule_flush()

    async def _auth(self, m: Auth) -> None:
        if self.principal is not None:
            raise Violation("already authenticated")
        try:
            self.principal = await self.runtime.verifier.verify(m.token)
        except ServiceError as exc:
            raise Violation(f"{exc.code}: {exc.detail}") from None
        self.send("authenticated", user_id=self.principal.user_id)

    async def _start(self, m: Start) -> None:
        assert self.principal is not None
        try:
            handle = await start_session(
                self.runtime.transaction,
                self.principal.user_id,
                m,
                free_limits(self.settings),
                datetime.now(UTC),
            )
        except Refused as exc:
            self.send("refused", seq=m.seq, code=exc.code, detail=exc.detail, unlock=exc.unlock)
            return
        self._adopt(handle)
        log.info("live session %s started on piece %s", handle.session_id, handle.piece_id)
        self.send(
            "started",
            seq=m.seq,
            session_id=handle.session_id,
            piece_id=handle.piece_id,
            piece_version=handle.piece_version,
        )
        self.send("ack", seq=m.seq)

    async def _resume(self, m: Resume) -> None:
        assert self.principal is not None
        older = _ACTIVE.get(m.session_id)
        if older is not None and older.handle and older.handle.user_id == self.principal.user_id:
            # let the old connection write its last checkpoint before this one reads it
            older.end(4000, "the session was resumed on another connection")
            with suppress(TimeoutError):
                await asyncio.wait_for(older.closed.wait(), 2.0)
        try:
            handle, replay = await resume_session(
                m.session_id, self.principal.user_id, m.last_acked_seq
            )
        except Refused as exc:
            self.send(
                "refused", seq=m.seq, code=exc.code, detail=exc.detail, performance_id=exc.unlock
            )
            return
        self._adopt(handle)
        log.info("live session %s resumed after seq %d", handle.session_id, handle.last_seq)
        out = handle.run.outcome([])
        self._moved(out.position, out.tempo_bpm)
        self.send(
            "resumed",
            seq=m.seq,
            session_id=handle.session_id,
            last_acked_seq=handle.last_seq,
            position=out.position,
            tempo_bpm=out.tempo_bpm,
        )
        # answers the client never got for messages the checkpoint holds, once each
        for seq in sorted(replay):
            self.send(
                "judged",
                seq=seq,
                replayed=True,
                judgements=[judgement_dict(j) for j in replay[seq]],
            )

    def _adopt(self, handle: LiveHandle) -> None:
        self.handle = handle
        self.processed = handle.last_seq
        _ACTIVE[handle.session_id] = self
        LIVE_SESSIONS.inc()

    async def _sequenced(self, m: Notes | Control, handle: LiveHandle) -> None:
        run = handle.run
        if isinstance(m, Notes):
            if run.paused_at is not None:
                self.error("paused", "send continue before playing on", m.seq)
                return
            try:
                events = m.events or run.raw_midi(m.raw_midi)
                outcome = run.notes(m.seq, events)
            except EngineError as exc:
                self.error("invalid_event", str(exc), m.seq)
                return
            self.send(
                "judged",
                seq=m.seq,
                judgements=[judgement_dict(j) for j in outcome.judgements],
                position=outcome.position,
                tempo_bpm=outcome.tempo_bpm,
            )
            self._moved(outcome.position, outcome.tempo_bpm)
            JUDGEMENTS.observe(
                time.perf_counter() - self.received_at, sum(e.kind == "on" for e in events)
            )
        elif m.kind == "pause":
            run.pause(m.seq, m.t)
            self.send("paused", seq=m.seq)
        elif m.kind == "continue":
            run.resume_play(m.seq, m.t)
            self.send("continued", seq=m.seq)
        elif m.kind == "calibrate":
            self.calibration = Calibration(CALIBRATION_PROBES)
            self.probe_task = asyncio.create_task(self._probe(self.calibration))
        elif m.kind == "finish":
            await self._finish(m.seq, handle)

    async def _finish(self, seq: int, handle: LiveHandle) -> None:
        await self._flush()
        try:
            done = await finish_session(self.runtime.transaction, handle, datetime.now(UTC))
        except EngineError as exc:
            self.error("nothing_to_score", str(exc), seq)
            return
        except SessionGone as exc:
            self.error("session_finished", str(exc), seq)
            return
        report = done["report"]
        log.info("live session %s finished: performance %s", handle.session_id,
                 done["performance_id"])  # fmt: skip
        self.send(
            "finished",
            seq=seq,
            performance_id=done["performance_id"],
            overall=report["overall"],
            subscores=report["subscores"],
            findings=[f["text"] for f in report["findings"]],
        )
        self.end(1000, "finished")

    # -- clock, position, checkpoints ----------------------------------------------------------
    async def _probe(self, calibration: Calibration) -> None:
        for probe in range(calibration.probes):
            calibration.probe(probe, time.time())
            self.send("clock", probe=probe, server_time=time.time())
            await asyncio.sleep(0.05)

    def _clock(self, m: ClockReply) -> None:
        cal = self.calibration
        if cal is None or not cal.reply(m.probe, m.client_time, time.time()):
            self.error("unexpected_clock", "no clock probe with that id is waiting", m.seq)
            return
        if cal.done and self.handle is not None:
            est = cal.estimate()
            self.handle.run.set_offset(self.processed, est.offset_s, est.jitter_s)
            self.calibration = None
            self.send(
                "calibrated",
                offset_ms=est.offset_s * 1000,
                jitter_ms=est.jitter_s * 1000,
                rtt_ms=est.rtt_s * 1000,
                samples=est.samples,
            )

    def tick(self, now: float, wall: float) -> None:
        """Called by the process's ticker every WS_POSITION_INTERVAL_S (`now` on the
        perf_counter clock, `wall` the server's time): timeouts, missed notes, position."""
        if self.done.is_set():
            return
        if self.principal is None:
            if now - self.received_at > self.settings.ws_auth_timeout_s:
                self.end(1008, f"no auth message within {self.settings.ws_auth_timeout_s:g} s")
            return
        if now - self.received_at > self.settings.ws_idle_timeout_s:
            self.end(1001, f"idle for {self.settings.ws_idle_timeout_s:g} s")
            return
        run = self.handle.run if self.handle is not None else None
        if run is None or not run.calibrated:
            return
        # every judged message carries the position: only the server's clock passing notes by
        # moves it without one
        missed = run.advance_to_server_time(self.processed, wall)
        if not missed:
            return
        self.send("missed", seq=self.processed, judgements=[judgement_dict(j) for j in missed])
        out = run.outcome([])
        if out.position is not None and self._moved(out.position, out.tempo_bpm):
            self.send("position", seq=self.processed, **out.position, tempo_bpm=out.tempo_bpm)

    def _moved(self, position: dict[str, Any] | None, tempo_bpm: float) -> bool:
        """Whether this differs from the position the client was last told (and remember it)."""
        now = (position, round(tempo_bpm, 1))
        if now == self.last_position:
            return False
        self.last_position = now
        return True

    def _schedule_flush(self) -> None:
        if not self.commit_pending:
            self.commit_pending = True
            group_commit(self.settings.ws_checkpoint_interval_s, self._touch_after_s).add(self)

    async def _flush(self) -> None:
        async with self.flush_lock:
            handle = self.handle
            if handle is None or self.processed == handle.last_seq:
                return
            await checkpoint(handle, self.processed, datetime.now(UTC), self._touch_after_s)
            self.send("ack", seq=handle.last_seq)

    @property
    def _touch_after_s(self) -> float:
        # last_seen_at refreshed a few times per abandon period, not on every checkpoint
        return self.settings.session_abandon_after_s / 4
