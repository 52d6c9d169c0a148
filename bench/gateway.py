"""Where the benchmarks find the repository, nginx and the local fleet's gateway."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "local"))
from sonata_local.fleet import start_gateway  # noqa: E402
from sonata_local.plan import service  # noqa: E402

NGINX = "/usr/sbin/nginx"

__all__ = ["NGINX", "ROOT", "service", "start_gateway"]
