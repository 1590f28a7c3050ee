"""The echo apps: the reference HTTP workloads, served as the services are (uvicorn, uvloop, a socket
per worker) but with uvicorn's stock httptools protocol (see `main`).

- ``bare``: no framework, no middleware — what a request costs on stock uvicorn, uvloop and
  httptools on this machine. ``make bench`` calibrates with it in every run.
- ``fastapi``: a FastAPI app that validates the posted JSON object and answers a small JSON — the
  reference issue #18 measured its ratio against ("a FastAPI echo app does 2,144 req/s here under
  one Locust process"), and what the services are built on. The load test's ratio gate loads it
  with the same Locust as the search path (``calibration.serve_echo``).

Both answer ``{"echo":"ok"}`` to any POST.

    python -m ragfleet.bench.echo --port 8099 [--workers 2] [--framework fastapi]
"""

from __future__ import annotations

import argparse
from typing import Any

from starlette.types import Receive, Scope, Send

from ragfleet.common.server import run_app

_HEADERS = [(b"content-type", b"application/json")]
_BODY = b'{"echo":"ok"}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


def fastapi_app() -> Any:
    """The FastAPI echo app (a factory: FastAPI is imported only by the process that serves it)."""
    from fastapi import Body, FastAPI

    echo = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @echo.post("/{path:path}")
    async def answer(path: str, body: dict[str, Any] = Body(...)) -> dict[str, str]:
        return {"echo": "ok"}

    return echo


FRAMEWORKS = {"bare": "ragfleet.bench.echo:app", "fastapi": "ragfleet.bench.echo:fastapi_app"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--framework", choices=sorted(FRAMEWORKS), default="bare")
    args = parser.parse_args()
    # As the services run: with several workers, a SO_REUSEPORT socket each. A shared socket gave
    # one worker most connections (wrk's 32 split 32/0, 17/15): a reference with a saturated
    # worker beside an idle one understates what the machine serves and flatters the ratio.
    # But uvicorn's own httptools protocol, not the services' (server.HTTP_PROTOCOL, one write per
    # response): the reference is the stock FastAPI app issue #18 measures against, and the one
    # every stored calibration was taken with; what the services' protocol saves is theirs.
    run_app(
        FRAMEWORKS[args.framework], factory=args.framework == "fastapi", host="127.0.0.1",
        port=args.port, workers=args.workers, loop="uvloop", http="httptools", log_level="warning",
        access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
