"""A RabbitMQ node of the test's own, for tests that stop and restart the broker.

The machine's shared broker must never be restarted by a test, so this starts a second node
from the same Debian installation: its own node name, AMQP and distribution ports, data and
log directories under a temporary folder, no plugins. Its data survives ``restart()``, as a
real broker's durable queues and persistent messages do.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from sonata_testing.infra import free_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _tool(name: str) -> str:
    candidate = RABBIT_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the rabbitmq-server Debian package")
    return found


class PrivateRabbit:
    def __init__(self) -> None:
        self.node = f"sonata-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.base = Path(tempfile.mkdtemp(prefix="sonata-rabbit-"))
        (self.base / "mnesia").mkdir()
        (self.base / "log").mkdir()
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            # keep the machine's env file (its node name and port) out of this node
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self, timeout: float = 90.0) -> PrivateRabbit:
        out = open(self.base / "server.out", "ab")  # noqa: SIM115 - the process holds it
        self._proc = subprocess.Popen(
            [_tool("rabbitmq-server")],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited early:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rabbitmq node {self.node} not up within {timeout}s")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node cleanly (as an operator's restart would)."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = None
            return
        subprocess.run(
            [_tool("rabbitmqctl"), "-n", self.node, "stop"],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def log_tail(self, n: int = 3000) -> str:
        try:
            return (self.base / "server.out").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PrivateRabbit:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
