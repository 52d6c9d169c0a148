"""Domain events over RabbitMQ: topology, transactional outbox and relay, consumer with inbox."""

from sonata_messaging.consumer import Consumer, Handler, HandlerSpec, on
from sonata_messaging.correlation import correlation_scope, get_correlation_id
from sonata_messaging.outbox import Outbox
from sonata_messaging.relay import OutboxRelay
from sonata_messaging.topology import DEAD_LETTER_EXCHANGE, EXCHANGE, declare_topology
from sonata_messaging.transaction import Transaction, run_in_transaction

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "EXCHANGE",
    "Consumer",
    "Handler",
    "HandlerSpec",
    "Outbox",
    "OutboxRelay",
    "Transaction",
    "correlation_scope",
    "declare_topology",
    "get_correlation_id",
    "on",
    "run_in_transaction",
]
