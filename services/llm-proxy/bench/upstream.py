"""The benchmark's upstream: a bare ASGI app answering OpenAI chat completions (JSON and SSE) at once.

The scripted fake upstream of the tests (ragfleet.testkit) runs the full service chassis and
records every request, which costs more CPU per request than the proxy is allowed: measured
against it, the benchmark would measure the fake. This one has no middleware, no validation and
canned answers, and runs on the same server stack as the proxy (uvicorn, uvloop, httptools), so its
own CPU per request is the floor of any Python HTTP hop here; the benchmark reports it separately.

    python services/llm-proxy/bench/upstream.py --port 8099
"""

from __future__ import annotations

import argparse
import time

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

CONTENT = "The benchmark upstream answers every question the same way, in a dozen words or so."
WORDS = [w if i == 0 else " " + w for i, w in enumerate(CONTENT.split(" "))]


def _completion(model: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": CONTENT}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 4, "completion_tokens": len(WORDS), "total_tokens": 4 + len(WORDS)},
        }
    )


def _stream(model: str) -> bytes:
    """The whole event stream as one body: role, one chunk per word, the finish, usage, [DONE]."""
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    deltas = [{"role": "assistant", "content": ""}] + [{"content": w} for w in WORDS]
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 4, "completion_tokens": len(WORDS), "total_tokens": 4 + len(WORDS)},
        }
    )
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


_CANNED: dict[tuple[str, bool], bytes] = {}
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] != "/v1/chat/completions":
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
        return
    request = orjson.loads(body)
    key = (str(request.get("model")), bool(request.get("stream")))
    answer = _CANNED.get(key)
    if answer is None:
        answer = _CANNED[key] = _stream(key[0]) if key[1] else _completion(key[0])
    await send({"type": "http.response.start", "status": 200, "headers": _SSE if key[1] else _JSON})
    await send({"type": "http.response.body", "body": answer})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
        log_level="warning", access_log=False, lifespan="on",
    )  # fmt: skip


if __name__ == "__main__":
    main()
