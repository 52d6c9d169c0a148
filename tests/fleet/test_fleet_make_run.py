"""`make run` itself: it starts the fleet, and Ctrl-C stops every process it started.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group; the test does the
same to the group it started `make run` in. Ports are moved with the SONATA_*_PORT variables.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pymongo
import pytest
from sonata_testing import RabbitVhost, SecantusServer, free_port

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from sonata_local.fleet import find_binary  # noqa: E402
from sonata_local.plan import SERVICES  # noqa: E402

pytestmark = pytest.mark.fleet


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0], int(fields[19])


def _tree(root: int) -> dict[int, int]:
    """Every live process under `root` with its start time (to tell a reused pid apart)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            parents.setdefault(st[0], []).append(int(entry.name))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            st = _stat(child)
            if st is not None and child not in found:
                found[child] = st[2]
                todo.append(child)
    return found


def _alive(pid: int, started: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] == started and st[1] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def test_make_run_starts_the_fleet_and_ctrl_c_stops_all_of_it(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make, "make is not installed"
    assert find_binary("nginx"), (
        "nginx is not installed, so make run has no gateway to test: run `make install` as root "
        "(it runs apt-get install nginx) or `sudo apt-get install nginx`"
    )
    ports = {f"SONATA_{s.env_key}_PORT": free_port() for s in SERVICES}
    ports |= {"SONATA_GATEWAY_PORT": free_port(), "SONATA_MONGO_PORT": free_port()}
    ports["SONATA_MAIL_PORT"] = free_port()
    ports["SONATA_SMS_PORT"] = free_port()
    out_path = tmp_path / "make-run.out"
    with RabbitVhost("sonata-makerun") as vhost, out_path.open("wb") as out:
        skip = ("MONGODB_URL", "ENVIRONMENT", "SMTP_HOST", "SMTP_PORT", "TWILIO_ACCOUNT_SID")
        env = {k: v for k, v in os.environ.items() if k not in skip}
        env |= {k: str(v) for k, v in ports.items()}
        env |= {"SONATA_VAR_DIR": str(tmp_path / "var"), "AMQP_URL": vhost.url}
        env["SONATA_PROMETHEUS"] = "off"
        proc = subprocess.Popen(
            [make, "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        seen: dict[int, int] = {}
        try:
            deadline = time.monotonic() + 150
            while "Ctrl-C stops everything" not in out_path.read_text(errors="replace"):
                assert proc.poll() is None, out_path.read_text(errors="replace")[-5000:]
                assert time.monotonic() < deadline, out_path.read_text(errors="replace")[-5000:]
                time.sleep(0.5)
            printed = out_path.read_text(errors="replace")
            assert "NOT READY" not in printed, printed[-5000:]
            gateway = f"http://127.0.0.1:{ports['SONATA_GATEWAY_PORT']}"
            for s in SERVICES:
                port = ports[f"SONATA_{s.env_key}_PORT"]
                # each service's URL and docs URL, direct and through the gateway
                assert f"http://127.0.0.1:{port}/docs" in printed
                assert f"{gateway}/api/{s.name}/docs" in printed
                assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
                assert httpx.get(f"{gateway}/api/{s.name}/readyz", timeout=5).status_code == 200
            # where a developer's mail lands, and the sink listening there
            assert f"Mail: every message sent is kept in {tmp_path / 'var' / 'mail'}/" in printed
            assert f"SMTP sink on 127.0.0.1:{ports['SONATA_MAIL_PORT']}" in printed
            assert f"SMS: every text sent is kept in {tmp_path / 'var' / 'sms'}/" in printed
            mongo_url = f"mongodb://127.0.0.1:{ports['SONATA_MONGO_PORT']}/?directConnection=true"
            with pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000) as c:
                c["fleet_check"]["marks"].insert_one({"_id": "kept", "at": time.time()})
            seen = _tree(proc.pid)
            names = " ".join(_cmdline(p) for p in seen)
            for part in (
                "honcho",
                "secantusd",
                "uvicorn",
                "nginx",
                "sonata_local.mailsink",
                "sonata_local.smssink",
            ):
                assert part in names, f"{part} not among the processes of make run: {names}"
        finally:
            seen |= _tree(proc.pid)
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                left = [_cmdline(p) for p, t in seen.items() if _alive(p, t)]
                for p, t in seen.items():
                    if _alive(p, t):
                        os.kill(p, signal.SIGKILL)
                pytest.fail(f"make run did not stop within 60 s after Ctrl-C; left: {left}")

    deadline = time.monotonic() + 10
    while any(_alive(p, t) for p, t in seen.items()) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [f"{p} {_cmdline(p)}" for p, t in seen.items() if _alive(p, t)]
    assert not left, f"left running after Ctrl-C: {left}"
    printed = out_path.read_text(errors="replace")
    assert "stopping the fleet" in printed
    assert not re.search(r"^Traceback", printed, re.MULTILINE), printed[-5000:]

    # SecantusDB was shut down cleanly: its data directory opens again with the write in it
    again = SecantusServer(storage_path=str(tmp_path / "var" / "mongo"))
    with again, pymongo.MongoClient(again.url, serverSelectionTimeoutMS=5000) as c:
        assert c["fleet_check"]["marks"].find_one({"_id": "kept"}) is not None


def _refused(tmp_path: Path, **overrides: str) -> str:
    """Run `make run` expecting it to refuse to start; its output."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URL", "AMQP_URL")}
    env |= {f"SONATA_{s.env_key}_PORT": str(free_port()) for s in SERVICES}
    env |= {"SONATA_GATEWAY_PORT": str(free_port()), "SONATA_MONGO_PORT": str(free_port())}
    env["SONATA_MAIL_PORT"] = str(free_port())
    env["SONATA_SMS_PORT"] = str(free_port())
    env |= {"SONATA_VAR_DIR": str(tmp_path / "var"), "SONATA_PROMETHEUS": "off", **overrides}
    done = subprocess.run(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout[-3000:]
    assert not (tmp_path / "var" / "mongo").exists(), "it started SecantusDB before refusing"
    return done.stdout + done.stderr


def test_make_run_without_a_broker_says_how_to_get_one(tmp_path: Path) -> None:
    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    printed = _refused(tmp_path, AMQP_URL=nowhere)
    assert "RabbitMQ is not answering" in printed
    assert "apt-get install rabbitmq-server" in printed
    assert "Traceback" not in printed


def test_make_run_refuses_a_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        printed = _refused(tmp_path, SONATA_DB_PORT=port)
    assert f"db :{port}" in printed
    assert "ports already in use" in printed
    assert "Traceback" not in printed
