"""kombu's Redis transport with one fault fixed: a worker must survive its broker going away.

Celery 5.7 (with kombu 5.7, the newest of both here) closes the broken connection right after
``collect()``ing it when the broker drops (celery/worker/consumer/consumer.py,
``on_connection_error_after_connected``; 5.6 only collected it). ``collect()`` detaches the
transport from its connection (``transport.client = None``) even when closing the task channel
failed half-way — which it does whenever the channel had a BRPOP in flight and the drop was noticed
first on another socket (the remote-control pub/sub one). The second close then tries to give the
unacknowledged messages back, asks the detached transport for its connection parameters
(``self.connection.client.hostname``) and raises ``AttributeError``. Only connection and channel
errors are ignored on that path, so the worker's consumer dies: "Unrecoverable error:
AttributeError('NoneType' object has no attribute 'hostname')", and the worker process exits. A
task finishing on the old channel afterwards trips over the same thing when it acks.

Here a channel whose connection is gone says so with the error kombu expects from a dead broker.
Nothing is lost by it: an unacknowledged task stays in the broker's ``unacked`` hash (the state
Redis persists it) and is delivered again once ``visibility_timeout`` has passed; the task is
idempotent (a second copy finds its document final or unchanged). Found with
``tests/test_broker_loss_integration.py``, which kills the broker under a busy worker until this
path is taken.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

TRANSPORT = "ragfleet.ingestion.broker:Transport"
SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection of this channel was closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
