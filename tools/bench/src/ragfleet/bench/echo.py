"""The bare echo app: the calibration's reference HTTP workload, on the services' own server stack.

No framework, no middleware: what any request to a ragfleet service costs at least on this machine
(uvicorn, uvloop, httptools). ``make bench`` measures it in every run; the load test's ratio gate
loads it with the same Locust as the search path (``calibration.serve_echo``).

    python -m ragfleet.bench.echo --port 8099 [--workers 2]
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.types import Receive, Scope, Send

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "ragfleet.bench.echo:app", host="127.0.0.1", port=args.port, workers=args.workers,
        loop="uvloop", http="httptools", log_level="warning", access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
