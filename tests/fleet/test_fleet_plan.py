"""The plan `make run` follows: ports from the environment, refusals, and a Procfile the shell
reads back exactly, whatever characters the settings hold."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from sonata_local.plan import SERVICES, Config, PlanError  # noqa: E402


def plan(**environ: str) -> Config:
    return Config.from_environ(
        environ, root=ROOT, python=sys.executable, nginx="/usr/sbin/nginx", prometheus=None
    )


def test_defaults_are_the_fleet_conventions() -> None:
    cfg = plan()
    assert {s.name: cfg.ports[s.name] for s in SERVICES} == {
        "auth": 8001,
        "db": 8002,
        "ai-scoring": 8003,
        "notifications": 8004,
        "payment": 8005,
        "metrics": 8006,
    }
    assert (cfg.gateway_port, cfg.mongo_port) == (8080, 27017)
    assert cfg.var_dir == ROOT / "var"
    env = cfg.service_env(SERVICES[1])
    assert env["ENVIRONMENT"] == "development"
    assert env["MONGODB_DB"] == "library"
    assert env["ROOT_PATH"] == "/api/db"
    assert env["AUTH_JWKS_URL"] == "http://127.0.0.1:8001/.well-known/jwks.json"
    assert env["MONGODB_URL"] == "mongodb://127.0.0.1:27017/?directConnection=true"


def test_ports_move_with_the_sonata_variables() -> None:
    cfg = plan(SONATA_AUTH_PORT="9101", SONATA_AI_SCORING_PORT="9103", SONATA_GATEWAY_PORT="9180")
    assert cfg.ports["auth"] == 9101
    assert cfg.ports["ai-scoring"] == 9103
    assert cfg.gateway_url(SERVICES[2]) == "http://127.0.0.1:9180/api/ai-scoring"
    # every service finds auth's keys where auth now listens
    assert cfg.service_env(SERVICES[5])["AUTH_JWKS_URL"].startswith("http://127.0.0.1:9101/")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SONATA_DB_PORT": "eighty"}, "SONATA_DB_PORT"),
        ({"SONATA_GATEWAY_PORT": "70000"}, "SONATA_GATEWAY_PORT"),
        ({"SONATA_DB_PORT": "8001"}, "same port"),
        ({"AMQP_URL": "http://127.0.0.1:5672/"}, "AMQP_URL"),
    ],
)
def test_unusable_settings_are_refused_with_their_name(environ: dict[str, str], named: str) -> None:
    with pytest.raises(PlanError, match=named):
        plan(**environ)


def test_without_nginx_services_keep_their_own_root() -> None:
    cfg = Config.from_environ({}, root=ROOT, python=sys.executable, nginx=None, prometheus=None)
    assert "ROOT_PATH" not in cfg.service_env(SERVICES[0])
    assert [name for name, _, _ in cfg.processes()] == [s.name for s in SERVICES]


def test_the_shell_reads_each_procfile_line_back_exactly() -> None:
    tricky = "amqp://user:p@ss w$rd'\"`x`@127.0.0.1:5672/%2F"
    cfg = plan(AMQP_URL=tricky, MONGODB_URL="mongodb://h:1/?a=1&b=2")
    lines = [ln for ln in cfg.procfile().splitlines() if not ln.startswith("#")]
    assert len(lines) == len(cfg.processes())
    for line, (name, argv, env) in zip(lines, cfg.processes(), strict=True):
        label, _, command = line.partition(": ")
        assert label == name
        # what /bin/sh hands to `env` is what the plan meant, quotes and dollars included
        shown = command.replace("exec env ", "exec env -0 ", 1)
        shown = shown.rsplit(" " + shlex.quote(argv[0]), 1)[0]
        if not env:
            continue
        out = subprocess.run(["/bin/sh", "-c", shown], capture_output=True, check=True).stdout
        seen = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
        assert {k: seen[k] for k in env} == env
