"""The README's front page: what Sonata is, the fleet picture, the two commands, the URLs
`make run` really serves, and where to read next; nothing else."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from sonata_local.plan import SERVICES, Config  # noqa: E402

README = (ROOT / "README.md").read_text()


def sections() -> list[str]:
    return re.findall(r"^## (.+)$", README, re.MULTILINE)


def test_the_front_page_has_its_parts_and_no_others() -> None:
    assert sections() == ["Run it", "Read next"]
    intro = README.split("## ")[0]
    assert "```mermaid" in intro
    picture = intro.split("```mermaid", 1)[1].split("```", 1)[0]
    for s in SERVICES:
        assert s.name in picture or s.package.removeprefix("sonata_") in picture, s.name
    commands = re.findall(r"^make (\w+)", README.split("## Run it", 1)[1], re.MULTILINE)
    assert commands[:2] == ["run", "test"]


def test_the_urls_are_the_ones_make_run_serves() -> None:
    # the defaults, with nginx present: what a fresh machine's `make run` prints
    cfg = Config.from_environ({}, root=ROOT, python=sys.executable, nginx="nginx", prometheus=None)
    for s in SERVICES:
        assert f"{cfg.direct_url(s)}/docs" in README, s.name
        assert f"{cfg.gateway_url(s)}/docs" in README, s.name


def test_every_document_it_points_to_exists() -> None:
    read_next = README.split("## Read next", 1)[1]
    for target in re.findall(r"\]\(([^)]+)\)", read_next):
        assert (ROOT / target).exists(), target
    for pattern in re.findall(r"`((?:services|libs)/<name>/README\.md)`", read_next):
        kind = pattern.split("/")[0]
        members = [p for p in (ROOT / kind).iterdir() if (p / "pyproject.toml").exists()]
        missing = [p.name for p in members if not (p / "README.md").exists()]
        assert not missing, f"{kind} without a README: {missing}"
