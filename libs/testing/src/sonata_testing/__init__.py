"""Real components for tests: a SecantusDB server, a RabbitMQ virtual host, service processes."""

from sonata_testing.bus import eventually, publish_events
from sonata_testing.infra import (
    RabbitVhost,
    SecantusServer,
    ServiceProcess,
    free_port,
    wait_http_ok,
)
from sonata_testing.tokens import JwksServer, SigningKey, TokenFactory

__all__ = [
    "JwksServer",
    "RabbitVhost",
    "SecantusServer",
    "ServiceProcess",
    "SigningKey",
    "TokenFactory",
    "eventually",
    "free_port",
    "publish_events",
    "wait_http_ok",
]
