"""SecantusDB with a short transaction lifetime, standing in for a mongod started with
`--setParameter transactionLifetimeLimitSeconds=N`: a transaction left open by a SIGKILLed
client is reaped after N seconds instead of 60.

    python short_txn_mongo.py <port> <lifetime_seconds>
"""

import signal
import sys
from types import FrameType

from secantus.server import SecantusDBServer


def main(port: int, lifetime: float) -> None:
    server = SecantusDBServer(
        host="127.0.0.1",
        port=port,
        storage_path=":memory:",
        transaction_lifetime_seconds=lifetime,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.start()
    server.wait()


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
