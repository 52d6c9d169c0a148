"""`make dlq-replay` with a name that has no dead-letter queue, or with no broker, says so."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sonata_testing import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def dlq_replay(service: str, amqp_url: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make, "make is not installed"
    return subprocess.run(
        [make, "--no-print-directory", "dlq-replay", f"s={service}"],
        cwd=ROOT,
        env={**os.environ, "AMQP_URL": amqp_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_unknown_service_is_named_without_a_traceback(amqp_url: str) -> None:
    result = dlq_replay("no-such-service", amqp_url)
    assert result.returncode != 0
    assert "no queue no-such-service.dead" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_broker_is_named_without_a_traceback() -> None:
    result = dlq_replay("notifications", f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    assert result.returncode != 0
    assert "cannot reach RabbitMQ (AMQP_URL)" in result.stderr
    assert "Traceback" not in result.stderr
