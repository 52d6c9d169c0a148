"""Start and stop the local fleet: SecantusDB, the RabbitMQ check, honcho over the Procfile.

SecantusDB runs outside the process manager on purpose: it must be answering before the
services start and must stop after them, so its shutdown (a WiredTiger checkpoint) is clean.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sonata_local.plan import SERVICES, Config, local_prometheus, render_local_nginx

ROOT = Path(__file__).resolve().parents[3]


class FleetError(RuntimeError):
    """The fleet cannot start; the message tells the user what to do."""


def find_binary(name: str) -> str | None:
    """A program on PATH, or in the sbin folders Debian puts daemons in (not on a user's PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def config_from_environ(environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    cfg = Config.from_environ(
        env,
        root=ROOT,
        python=sys.executable,
        nginx=find_binary("nginx"),
        prometheus=find_binary("prometheus") if env.get("SONATA_PROMETHEUS") != "off" else None,
    )
    if env.get("VAPID_PRIVATE_KEY"):
        return cfg  # the environment's own key pair, inherited by the service
    return dataclasses.replace(cfg, vapid_keys=local_vapid_keys(cfg.vapid_path))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def local_vapid_keys(path: Path) -> tuple[str, str]:
    """This machine's VAPID key pair for web push, made once and kept (owner-only) at `path`:
    browsers subscribed under the public key keep working across runs."""
    try:
        saved = json.loads(path.read_text())
        return str(saved["private"]), str(saved["public"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    private = _b64(key.private_numbers().private_value.to_bytes(32, "big"))
    public = _b64(key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"private": private, "public": public}, out)
    partial.replace(path)
    return private, public


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def amqp_answers(url: str, timeout: float = 2.0) -> bool:
    """True when a broker at `url` answers the AMQP 0-9-1 protocol header with a method frame."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            if parts.scheme == "amqps":
                return True  # a TLS listener answering TCP is as far as a probe should go
            s.sendall(b"AMQP\x00\x00\x09\x01")
            frame_type = s.recv(1)
            return frame_type == b"\x01"
    except OSError:
        return False


def ensure_rabbitmq(url: str, wait: float = 90.0) -> None:
    if amqp_answers(url):
        return
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 5672
    server = find_binary("rabbitmq-server")
    # a broker we start listens on the default port of this machine, nowhere else
    if server is None or host not in ("127.0.0.1", "localhost", "::1") or port != 5672:
        raise FleetError(
            f"RabbitMQ is not answering at {host}:{port} (AMQP_URL).\n"
            "Install and start one: `sudo apt-get install rabbitmq-server` (Debian/Ubuntu), "
            "or `docker run -d -p 5672:5672 rabbitmq:3-management`, or point AMQP_URL at a "
            "broker."
        )
    print(f"starting RabbitMQ: {server} -detached", flush=True)
    subprocess.run([server, "-detached"], check=False, timeout=60)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if amqp_answers(url):
            return
        time.sleep(1.0)
    raise FleetError(f"RabbitMQ started with `{server} -detached` did not answer in {wait:.0f}s")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway(
    var_dir: Path, routes: Mapping[str, int], nginx: str = "/usr/sbin/nginx"
) -> tuple[subprocess.Popen[bytes], int]:
    """The gateway `make run` renders, alone, in front of services already listening on this
    machine at ``routes`` (service name -> port; the others' upstreams point at free ports):
    the nginx process, answering, and its port. For benchmarks and fleet tests."""
    port = _free_port()
    environ = {
        "SONATA_VAR_DIR": str(var_dir),
        "SONATA_GATEWAY_PORT": str(port),
        **{f"SONATA_{s.env_key}_PORT": str(routes.get(s.name) or _free_port()) for s in SERVICES},
        "SONATA_MONGO_PORT": str(_free_port()),
        "SONATA_PROMETHEUS_PORT": str(_free_port()),
        "SONATA_MAIL_PORT": str(_free_port()),
        "SONATA_SMS_PORT": str(_free_port()),
        "MONGODB_URL": "mongodb://127.0.0.1/",
        "AMQP_URL": "amqp://127.0.0.1/",
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
    }
    cfg = Config.from_environ(
        environ, root=ROOT, python=sys.executable, nginx=nginx, prometheus=None
    )
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (cfg.nginx_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    conf = cfg.nginx_dir / "nginx.conf"
    conf.write_text(render_local_nginx(cfg))
    proc = subprocess.Popen([nginx, "-p", f"{cfg.nginx_dir}/", "-c", str(conf), "-e", "stderr"])
    deadline = time.monotonic() + 20.0
    while http_status(f"http://127.0.0.1:{port}/healthz", timeout=1.0) != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise FleetError(f"the gateway did not answer on port {port} (nginx: {nginx})")
        time.sleep(0.05)
    return proc, port


class Fleet:
    """The whole local fleet. `start()` returns once the process manager is running."""

    def __init__(self, cfg: Config, *, quiet: bool = False) -> None:
        self.cfg = cfg
        self.quiet = quiet
        self.mongo: subprocess.Popen[bytes] | None = None
        self.manager: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- start
    def check_ports(self) -> None:
        cfg = self.cfg
        wanted = {s.name: cfg.ports[s.name] for s in SERVICES}
        if cfg.gateway:
            wanted["gateway"] = cfg.gateway_port
        if cfg.external_mongo_url is None:
            wanted["SecantusDB"] = cfg.mongo_port
        if cfg.prometheus:
            wanted["prometheus"] = cfg.prometheus_port
        if cfg.mail_sink:
            wanted["mail sink"] = cfg.mail_port
        if cfg.sms_sink:
            wanted["SMS sink"] = cfg.sms_port
        busy = [f"{name} :{port}" for name, port in wanted.items() if port_in_use(cfg.host, port)]
        if busy:
            raise FleetError(
                "ports already in use (another `make run`?): "
                + ", ".join(busy)
                + ". Stop it, or move ours with SONATA_<NAME>_PORT."
            )

    def write_files(self) -> None:
        cfg = self.cfg
        cfg.var_dir.mkdir(parents=True, exist_ok=True)
        cfg.procfile_path.write_text(cfg.procfile())
        cfg.procfile_path.chmod(0o600)  # it holds the local VAPID private key
        # honcho reads ./.env by default; the fleet's environment is all in the Procfile
        (cfg.var_dir / "honcho.env").write_text("")
        if cfg.mail_sink:
            cfg.mail_dir.mkdir(parents=True, exist_ok=True)
        if cfg.sms_sink:
            cfg.sms_dir.mkdir(parents=True, exist_ok=True)
        if cfg.gateway:
            (cfg.nginx_dir / "tmp").mkdir(parents=True, exist_ok=True)
            (cfg.nginx_dir / "nginx.conf").write_text(render_local_nginx(cfg))
        if cfg.prometheus:
            (cfg.prometheus_dir / "data").mkdir(parents=True, exist_ok=True)
            (cfg.prometheus_dir / "prometheus.yml").write_text(local_prometheus(cfg))

    def start_mongo(self, timeout: float = 60.0) -> None:
        cfg = self.cfg
        if cfg.external_mongo_url is not None:
            return
        cfg.mongo_dir.mkdir(parents=True, exist_ok=True)
        secantusd = Path(cfg.python).parent / "secantusd-py"
        binary = str(secantusd) if secantusd.exists() else find_binary("secantusd-py")
        if binary is None:
            raise FleetError("secantusd-py not found: run `make install`")
        log = (cfg.var_dir / "secantusd.log").open("ab")
        # its own session: the terminal's Ctrl-C must not stop it before the services
        self.mongo = subprocess.Popen(
            [
                binary,
                "--host",
                cfg.host,
                "--port",
                str(cfg.mongo_port),
                "--storage-path",
                str(cfg.mongo_dir),
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.mongo.poll() is not None:
                log_path = cfg.var_dir / "secantusd.log"
                raise FleetError(f"SecantusDB exited with {self.mongo.returncode}: see {log_path}")
            if port_in_use(cfg.host, cfg.mongo_port):
                return
            time.sleep(0.2)
        raise FleetError(f"SecantusDB did not listen on :{cfg.mongo_port} within {timeout:.0f}s")

    def start_manager(self) -> None:
        cfg = self.cfg
        argv = [
            cfg.python,
            "-m",
            "honcho",
            "-f",
            str(cfg.procfile_path),
            "-d",
            str(cfg.root),
            "-e",
            str(cfg.var_dir / "honcho.env"),
            "--no-colour",
            "start",
        ]
        out: int | None = None
        if self.quiet:
            log = (cfg.var_dir / "fleet.log").open("ab")
            self._log = log
            out = log.fileno()
        self.manager = subprocess.Popen(argv, cwd=cfg.root, stdout=out, stderr=subprocess.STDOUT)

    def start(self) -> Fleet:
        try:
            self.check_ports()
            ensure_rabbitmq(self.cfg.amqp_url)
            self.write_files()
            self.start_mongo()
            self.start_manager()
        except BaseException:
            self.stop()
            raise
        return self

    # -- watch
    def ready_urls(self) -> dict[str, tuple[str, str | None]]:
        """Every /readyz that must answer 200, direct and through the gateway.

        Each maps to its URL and the check that must pass first: the gateway's route is only
        asked once the service answers directly, which keeps nginx's log free of refusals.
        """
        urls: dict[str, tuple[str, str | None]] = {
            s.name: (f"{self.cfg.direct_url(s)}/readyz", None) for s in SERVICES
        }
        if self.cfg.gateway:
            for s in SERVICES:
                urls[f"gateway {s.name}"] = (f"{self.cfg.gateway_url(s)}/readyz", s.name)
        return urls

    def wait_ready(self, timeout: float) -> dict[str, int | None]:
        """Poll until every readiness URL answers 200 or `timeout` passes; the last statuses."""
        urls = self.ready_urls()
        status: dict[str, int | None] = dict.fromkeys(urls)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.manager is not None and self.manager.poll() is not None:
                raise FleetError(f"the process manager exited with {self.manager.returncode}")
            for name, (url, after) in urls.items():
                if status[name] != 200 and (after is None or status[after] == 200):
                    status[name] = http_status(url)
            if all(code == 200 for code in status.values()):
                break
            time.sleep(0.5)
        return status

    def wait(self) -> int:
        """Block until the process manager exits (it stops everything once one process dies)."""
        if self.manager is None:
            raise FleetError("the fleet was not started")
        return self.manager.wait()

    # -- stop
    def interrupt(self) -> None:
        """Ask honcho to stop everything it runs (what Ctrl-C in its terminal does)."""
        if self.manager is not None and self.manager.poll() is None:
            self.manager.send_signal(signal.SIGINT)

    def stop(self, timeout: float = 30.0) -> None:
        if self.manager is not None:
            self.interrupt()
            try:
                self.manager.wait(timeout)
            except subprocess.TimeoutExpired:
                self.manager.kill()
                self.manager.wait()
        if self.mongo is not None and self.mongo.poll() is None:
            self.mongo.terminate()
            try:
                self.mongo.wait(timeout)
            except subprocess.TimeoutExpired:
                self.mongo.kill()
                self.mongo.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def url_table(cfg: Config, status: Mapping[str, int | None] | None = None) -> str:
    rows = [("service", "direct", "docs", "via gateway", "gateway docs")]
    for s in SERVICES:
        direct = cfg.direct_url(s)
        via = cfg.gateway_url(s) if cfg.gateway else "-"
        rows.append((s.name, direct, direct + "/docs", via, via + "/docs" if cfg.gateway else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if not cfg.gateway:
        lines.append("gateway: nginx is not installed (`make install` as root adds it)")
    else:
        ws = f"ws://{cfg.host}:{cfg.gateway_port}/ws/"
        lines.append(f"gateway: {cfg.gateway_base}/api/<service>/...   WebSocket: {ws}")
    lines.append(f"MongoDB (SecantusDB): {cfg.mongo_url}   RabbitMQ: {_safe(cfg.amqp_url)}")
    if cfg.mail_sink:
        lines.append(
            f"Mail: every message sent is kept in {cfg.mail_dir}/ (*.eml; SMTP sink on "
            f"{cfg.host}:{cfg.mail_port}; set SMTP_HOST to use a real server)"
        )
    else:
        port = cfg.external_smtp_port or "the service's default port"
        lines.append(f"Mail: sent through SMTP_HOST={cfg.external_smtp} ({port})")
    if cfg.vapid_keys is not None:
        lines.append(f"Web push: VAPID key pair in {cfg.vapid_path} (kept across runs)")
    if cfg.sms_sink:
        lines.append(
            f"SMS: every text sent is kept in {cfg.sms_dir}/ (*.json; Twilio API double on "
            f"{cfg.sms_api_url}; set TWILIO_ACCOUNT_SID and the rest to use Twilio)"
        )
    else:
        lines.append("SMS: sent through Twilio (TWILIO_ACCOUNT_SID)")
    if cfg.prometheus:
        lines.append(f"Prometheus: http://{cfg.host}:{cfg.prometheus_port}/")
    if status is not None:
        late = [name for name, code in status.items() if code != 200]
        if late:
            lines.append("NOT READY: " + ", ".join(f"{n} ({status[n]})" for n in late))
    return "\n".join(lines)


def _safe(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
