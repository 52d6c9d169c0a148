"""The six services (and nginx, when installed) started as `make run` starts them: the same
plan and process manager, with free ports and the test's own SecantusDB and RabbitMQ vhost."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sonata_testing import RabbitVhost, SecantusServer, free_port

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from sonata_local.fleet import Fleet, FleetError, config_from_environ  # noqa: E402
from sonata_local.plan import SERVICES, Config  # noqa: E402


@contextmanager
def local_fleet(var: Path, vhost_prefix: str, *, require_gateway: bool = False) -> Iterator[Config]:
    with SecantusServer() as mongo, RabbitVhost(vhost_prefix) as vhost:
        env = {f"SONATA_{s.env_key}_PORT": str(free_port()) for s in SERVICES}
        env |= {
            "SONATA_GATEWAY_PORT": str(free_port()),
            "SONATA_MAIL_PORT": str(free_port()),
            "SONATA_SMS_PORT": str(free_port()),
            "SONATA_VAR_DIR": str(var),
            "SONATA_PROMETHEUS": "off",
            "MONGODB_URL": mongo.url,
            "AMQP_URL": vhost.url,
        }
        cfg = config_from_environ(env)
        if require_gateway and cfg.nginx is None:
            pytest.fail(
                "nginx is not installed, so the gateway cannot be tested: run `make install` "
                "as root (it runs apt-get install nginx) or `sudo apt-get install nginx`"
            )
        with Fleet(cfg, quiet=True) as running:
            try:
                status = running.wait_ready(timeout=120)
            except FleetError as exc:
                status = {str(exc): None}
            late = {name: code for name, code in status.items() if code != 200}
            if late:
                log = (var / "fleet.log").read_text(errors="replace")[-6000:]
                pytest.fail(f"fleet not ready after 120 s: {late}\n--- fleet log ---\n{log}")
            yield cfg
