"""Start and stop the real servers the tests talk to.

SecantusDB speaks the MongoDB wire protocol (transactions, change streams); each test run gets
its own server on a free port with in-memory storage. RabbitMQ is the machine's own broker; each
run gets its own virtual host so topology and queues never collide with another run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx
import pymongo


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    """A console script from this interpreter's environment, else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run `make install` first")
    return found


class SecantusServer:
    """A SecantusDB process on a free loopback port; ``url`` is a MongoDB connection string."""

    def __init__(self, storage_path: str = ":memory:", port: int | None = None) -> None:
        self.port = port or free_port()
        self.storage_path = storage_path
        self.url = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30.0) -> SecantusServer:
        # A file, not a pipe: nobody drains a pipe during the run, and a full one would block
        # the server.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [
                _bin("secantusd-py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                self.storage_path,
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                raise RuntimeError(f"secantusd exited early: {err[-2000:]}")
            try:
                client: pymongo.MongoClient[dict[str, object]]
                with pymongo.MongoClient(self.url, serverSelectionTimeoutMS=300) as client:
                    client.admin.command("ping")
                return self
            except pymongo.errors.PyMongoError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"secantusd did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> SecantusServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RabbitVhost:
    """A throw-away virtual host on the machine's RabbitMQ, created with ``rabbitmqctl``.

    ``SONATA_TEST_AMQP_URL`` overrides the broker (base URL without a vhost); the vhost is
    created through ``rabbitmqctl`` on this machine.
    """

    def __init__(self, prefix: str = "sonata-test") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        base = os.environ.get("SONATA_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
        self.url = f"{base.rstrip('/')}/{self.name}"

    @staticmethod
    def _ctl(*args: str) -> None:
        ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
        proc = subprocess.run([ctl, "-q", *args], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {proc.stderr.strip()}")

    def create(self) -> RabbitVhost:
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def delete(self) -> None:
        self._ctl("delete_vhost", self.name)

    def __enter__(self) -> RabbitVhost:
        return self.create()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.delete()


def wait_http_ok(
    url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            r = httpx.get(url, timeout=1.0)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {timeout}s: {last}")


class ServiceProcess:
    """One service started as a real uvicorn process, like ``make run`` does.

    ``app`` is an import string for uvicorn's ``--factory`` (``pkg.main:create_app``); ``env``
    is merged over the current environment. Output goes to ``log_path``.
    """

    def __init__(
        self,
        name: str,
        app: str,
        env: Mapping[str, str],
        port: int | None = None,
        log_dir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.app = app
        self.port = port or free_port()
        self.env = dict(env)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = (
            log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        ) / f"{name}-{self.port}.log"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        env = {**os.environ, **self.env}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                self.app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                *self.extra_args,
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http_ok(f"{self.base_url}/readyz", timeout, self.proc)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{self.name}: {exc}\n{self.log_tail()}") from exc
        return self

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Hard kill (SIGKILL): for crash tests."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
