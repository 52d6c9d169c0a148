"""`make` alone lists every target the Makefile documents, and the targets check their input."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = re.compile(r"^([a-zA-Z_-]+):.*?## (.+)$", re.MULTILINE)
# the routine the issue names; each must be one `make <target>` away
ROUTINE = {"run", "test", "lint", "typecheck", "fmt", "bench", "dlq-replay", "up", "down"}


def make(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("make")
    assert binary, "make is not installed"
    return subprocess.run(
        [binary, "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_make_alone_lists_every_documented_target_in_two_columns() -> None:
    documented = dict(DOCUMENTED.findall((ROOT / "Makefile").read_text()))
    assert set(documented) >= ROUTINE, sorted(ROUTINE - set(documented))
    shown = make()
    assert shown.returncode == 0, shown.stderr
    listed = {}
    starts = set()
    for line in shown.stdout.splitlines():
        m = re.fullmatch(r"  make (\S+) {2,}(\S.*)", line)
        assert m, f"not a `make <target>  <what it does>` line: {line!r}"
        listed[m.group(1)] = m.group(2)
        starts.add(m.start(2))
    assert listed == documented
    assert len(starts) == 1, f"descriptions start in columns {sorted(starts)}"


def test_dlq_replay_without_a_service_says_how_to_call_it() -> None:
    result = make("dlq-replay")
    assert result.returncode != 0
    assert "usage: make dlq-replay s=<service>" in result.stdout + result.stderr
