"""`make run`: the fleet in the foreground until Ctrl-C.

`python -m sonata_local render` rewrites the checked-in files rendered from the plan
(deploy/nginx/gateway.conf, prometheus/prometheus.local.yml).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from sonata_local.fleet import ROOT, Fleet, FleetError, config_from_environ, url_table
from sonata_local.plan import SERVICES, PlanError, compose_gateway, render_prometheus

READY_TIMEOUT = 120.0
# honcho's exit status after SIGINT / SIGTERM (honcho.manager.SIGNALS)
HONCHO_STOPPED_BY_SIGNAL = (130, 143)


def render() -> int:
    (ROOT / "deploy" / "nginx" / "gateway.conf").write_text(compose_gateway())
    (ROOT / "prometheus" / "prometheus.local.yml").write_text(local_prometheus_default())
    return 0


def local_prometheus_default() -> str:
    return render_prometheus(
        [(s, f"127.0.0.1:{s.port}") for s in SERVICES],
        "# Prometheus for the fleet of `make run` on its default ports:\n"
        "#   prometheus --config.file=prometheus/prometheus.local.yml\n"
        "# (`make run` starts it itself, with this layout, when prometheus is installed.)",
        "rules/*.yml",
    )


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run() -> int:
    try:
        cfg = config_from_environ()
    except PlanError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    # SIGTERM (a supervisor, `kill`) stops as cleanly as Ctrl-C does; SIGINT is set too, as a
    # shell starting us in the background hands SIGINT down ignored
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    fleet = Fleet(cfg)
    try:
        fleet.start()
        status = fleet.wait_ready(READY_TIMEOUT)
        print("\n" + url_table(cfg, status) + "\nCtrl-C stops everything.\n", flush=True)
        code = fleet.wait()
        if code in HONCHO_STOPPED_BY_SIGNAL:
            print("\nstopping the fleet", flush=True)
            return 0
        print(f"make run: a process exited, so the fleet stopped ({code})", file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        print("\nstopping the fleet", flush=True)
        return 0
    except FleetError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    finally:
        # a second Ctrl-C must not cut the clean shutdown short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fleet.stop()
        print("the fleet has stopped", flush=True)


def main(argv: list[str]) -> int:
    if argv == ["render"]:
        return render()
    if argv:
        print("usage: python -m sonata_local [render]", file=sys.stderr)
        return 2
    return run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
