"""`make run`'s SMS sink: a local server speaking Twilio's Messages API (the test suite's
double, sonata_testing.twilio_double), so that notifications' official Twilio client has
somewhere to send; every text it accepts is kept as a JSON file, none leaves.

    python -m sonata_local.smssink --port 8090 --dir var/sms --account-sid AC... --auth-token ...

Files are named `<UTC time>-<n>.json` (to, from, body, sid, status_callback) and written under
a temporary name first, like the mail sink's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from sonata_testing.twilio_double import SentSms, TwilioDouble


class SmsDir:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._seq = itertools.count(1)

    def store(self, sms: SentSms) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{os.getpid()}-{next(self._seq):06d}.json"
        record = {
            "sid": sms.sid,
            "to": sms.to,
            "from": sms.from_,
            "body": sms.body,
            "status_callback": sms.status_callback,
            "received_at": datetime.now(UTC).isoformat(),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{name}.part"
        partial.write_text(json.dumps(record, indent=2) + "\n")
        path = partial.replace(self.folder / name)
        print(f"SMS to {sms.to}: {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sonata_local.smssink")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="folder the .json files go to")
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    args = parser.parse_args(argv)
    kept = SmsDir(args.dir)
    double = TwilioDouble(
        args.account_sid, args.auth_token, port=args.port, on_message=kept.store
    ).start()
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Twilio API double on {double.url}, texts kept in {args.dir}", flush=True)
    while not stopping.wait(0.5):
        pass
    double.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
