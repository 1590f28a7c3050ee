"""The one dependency idiom: an alias reads what the lifespan put on app.state, over HTTP and WebSocket."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import FastAPI, WebSocket
from starlette.testclient import TestClient

from ragfleet.common.dependencies import app_state_reader, from_app_state

GreetingDep = Annotated[str, from_app_state("greeting")]


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/greeting")
    async def greeting(value: GreetingDep) -> dict[str, str]:
        return {"greeting": value}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, value: GreetingDep) -> None:
        await websocket.accept()
        await websocket.send_text(value)
        await websocket.close()

    return app


async def test_an_alias_reads_app_state_and_can_be_overridden() -> None:
    app = make_app()
    app.state.greeting = "hello"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        assert (await http.get("/greeting")).json() == {"greeting": "hello"}

        async def other() -> str:
            return "override"

        app.dependency_overrides[app_state_reader("greeting")] = other
        assert (await http.get("/greeting")).json() == {"greeting": "override"}


def test_the_same_alias_serves_a_websocket() -> None:
    app = make_app()
    app.state.greeting = "hi"
    with TestClient(app) as client, client.websocket_connect("/ws") as websocket:
        assert websocket.receive_text() == "hi"


def test_one_reader_per_attribute() -> None:
    assert app_state_reader("settings") is app_state_reader("settings")
    assert app_state_reader("settings") is not app_state_reader("redis")
