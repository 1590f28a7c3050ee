"""Running a service: ``python -m ragfleet.<service>`` ends here."""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from ragfleet.common.config import ServiceSettings
from ragfleet.common.logging import configure_logging
from ragfleet.common.metrics import prepare_multiprocess_dir, start_metrics_listener

# uvicorn's own default: the largest WebSocket message read into memory.
DEFAULT_WS_MAX_SIZE_BYTES = 16 * 1024 * 1024

log = logging.getLogger("ragfleet.server")


def serve(
    settings: ServiceSettings, app_factory: str, *, ws_max_size_bytes: int = DEFAULT_WS_MAX_SIZE_BYTES
) -> None:
    """Serve ``app_factory`` ("module:function") with uvicorn on uvloop + httptools.

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
        "http": "httptools",
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
