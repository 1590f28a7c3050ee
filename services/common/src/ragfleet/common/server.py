"""Running a service: ``python -m ragfleet.<service>`` ends here."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from ragfleet.common.config import ServiceSettings
from ragfleet.common.logging import configure_logging
from ragfleet.common.metrics import prepare_multiprocess_dir, start_metrics_listener

# uvicorn's own default: the largest WebSocket message read into memory.
DEFAULT_WS_MAX_SIZE_BYTES = 16 * 1024 * 1024

# The HTTP/1.1 protocol every service is served with: uvicorn's httptools protocol, its writes
# coalesced per event-loop turn (`OneWriteTransport`). The echo apps the services are measured
# against keep uvicorn's own (ragfleet.bench.echo).
HTTP_PROTOCOL = "ragfleet.common.server:CoalescingHttpToolsProtocol"

log = logging.getLogger("ragfleet.server")


def serve(
    settings: ServiceSettings, app_factory: str, *, ws_max_size_bytes: int = DEFAULT_WS_MAX_SIZE_BYTES
) -> None:
    """Serve ``app_factory`` ("module:function") with uvicorn on uvloop + httptools
    (`CoalescingHttpToolsProtocol`).

    SIGTERM/SIGINT stop accepting connections and let in-flight requests finish for up to
    ``graceful_shutdown_s``, which is what a Kubernetes rolling update needs. A WebSocket message
    over ``ws_max_size_bytes`` closes its connection (1009) before it is buffered whole.

    With several workers, each listens on a socket of its own bound with SO_REUSEPORT, so the
    kernel deals the connections out among them (see `ReusePortListener`); uvicorn's supervisor
    still starts, pings, restarts and stops them.
    """
    configure_logging(settings.service_name, settings.log_level)
    if settings.workers > 1:
        # Only worker processes (fresh interpreters) see the directory at import time; with one
        # worker this process serves, and its prometheus_client is already imported in-memory mode.
        prepare_multiprocess_dir(settings.metrics_dir)
    if settings.metrics_port:
        start_metrics_listener(settings.host, settings.metrics_port)
    options: dict[str, Any] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": HTTP_PROTOCOL,
        "ws": "websockets",
        "ws_max_size": ws_max_size_bytes,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        # Per-address limits (the gateway's anonymous one) see the client an ingress named, and
        # only a trusted ingress can name one.
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "timeout_graceful_shutdown": int(settings.graceful_shutdown_s),
        # How long the supervisor waits for a worker to start and to answer its pings before it
        # kills it: uvicorn's 5 s kills workers that a busy node (CPU limits, a neighbour's load)
        # starts in 10-40 s here, and they are restarted into the same wait.
        "timeout_worker_healthcheck": settings.worker_healthcheck_timeout_s,
        "timeout_keep_alive": 30,
    }
    run_app(app_factory, **options)


def run_app(app: str, **options: Any) -> None:
    """``uvicorn.run(app, **options)``, except that with several workers each listens on a socket
    of its own (`ReusePortListener`). The services run through here, and so does the echo app
    they are measured against (ragfleet.bench.echo), so both spread connections the same way."""
    if options.get("workers", 1) <= 1:
        uvicorn.run(app, **options)
        return
    config = uvicorn.Config(app, **options)
    check_port_free(config.host, config.port)
    Multiprocess(config, sockets=[ReusePortListener(config.host, config.port, config.backlog)]).run()  # type: ignore[list-item]


class ReusePortListener:
    """What the supervisor hands each worker in place of a socket: unpickled in the worker, it is
    a socket of the worker's own, bound to the port with SO_REUSEPORT.

    uvicorn binds one socket in the supervisor and every worker accepts from it: whichever
    worker is awake takes the next connection, so a busy one keeps taking them. Under wrk's 32
    keep-alive connections retrieval's two workers got 32/0, 22/10 and 17/15 in three runs, and
    the loaded one saturated while the other idled. With a listening socket per worker the
    kernel assigns each new connection to one of them by a hash of its addresses.

    The catch: connections still waiting in a worker's queue when it stops (a restart, a
    crash) are reset, where the shared queue let another worker take them.
    """

    def __init__(self, host: str, port: int, backlog: int) -> None:
        self.host, self.port, self.backlog = host, port, backlog

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return bind_reuse_port, (self.host, self.port)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_reuse_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT, not yet listening (uvicorn's server
    listens once the app has started, so no connection waits on a worker still starting)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        # STARTUP_FAILURE tells uvicorn's supervisor that a restart would fail the same way.
        logging.getLogger("uvicorn.error").error("worker cannot bind %s:%s: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    return sock


def check_port_free(host: str, port: int) -> None:
    """Exit at once when something listens on the port already. With SO_REUSEPORT a second copy
    of the service (a stale one, a second `make run`) would silently share the port and half
    the connections; a bind without it fails against any listener, as uvicorn's own bind did."""
    probe = socket.socket(_family(host), socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are no holder
    try:
        probe.bind((host, port))
    except OSError as exc:
        log.error("cannot serve on %s:%s: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    finally:
        probe.close()


class OneWriteTransport:
    """A connection's transport whose writes in one event-loop turn go out as one ``write()``.

    uvicorn writes a response's head as soon as the app sends ``http.response.start`` and its
    body on ``http.response.body``: two syscalls for every response, each waking the client (or
    NGINX) to read half an answer. py-spy on retrieval under wrk put ~10 % of a worker's samples
    on the head's write alone. Starlette sends both messages back to back, so held until the end
    of the turn they leave as one segment. A streamed response loses nothing: each chunk still
    leaves in the turn it was sent in. Everything but ``write`` is the transport's own; whatever
    ends the connection sends what is held first, and ``abort`` drops it, as it drops the
    transport's own buffer.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if self._held:
            data = b"".join(self._held)  # one chunk: CPython returns the chunk itself, no copy
            self._held.clear()
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        # A WebSocket upgrade: the handshake answer goes before the new protocol's first frame.
        self.flush()
        self._transport.set_protocol(protocol)

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `OneWriteTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWriteTransport(transport, self.loop))  # type: ignore[arg-type]
