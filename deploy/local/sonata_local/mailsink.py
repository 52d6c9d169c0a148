"""`make run`'s SMTP sink: every message the fleet sends is kept as a .eml file, none leaves.

    python -m sonata_local.mailsink --host 127.0.0.1 --port 1025 --dir var/mail

Files are named `<UTC time>-<n>.eml` so that `ls` lists them in the order they arrived; each is
written under a temporary name and renamed, so a reader never sees half a message. Open one
with any mail client, or read it as text.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class MailDir:
    """The aiosmtpd handler: one file per message accepted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._seq = itertools.count(1)

    def store(self, envelope: Envelope) -> Path:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{os.getpid()}-{next(self._seq):06d}.eml"
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{name}.part"
        partial.write_bytes(data)
        return partial.replace(self.folder / name)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        try:
            path = await asyncio.to_thread(self.store, envelope)
        except OSError as exc:
            # the sender retries a 4xx: the message is not lost while the disk is fixed
            return f"451 4.3.0 cannot store the message: {exc.strerror}"
        print(
            f"mail from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}: {path}", flush=True
        )
        return "250 Message accepted"


async def serve(host: str, port: int, folder: Path) -> None:
    handler = MailDir(folder)
    loop = asyncio.get_running_loop()

    def protocol() -> Any:
        return SMTP(handler, hostname="sonata-mail-sink")

    server = await loop.create_server(protocol, host, port)
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    print(f"SMTP sink on {host}:{port}, mail kept in {folder}", flush=True)
    async with server:
        await stopping.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sonata_local.mailsink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, required=True, help="folder the .eml files go to")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
