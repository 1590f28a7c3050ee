"""Bodies parsed by orjson behave like FastAPI's own parsing, and refuse what JSON does not allow."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from ragfleet.common.app import create_service_app
from ragfleet.common.config import ServiceSettings
from ragfleet.common.routing import OrjsonRoute


class Query(BaseModel):
    vector: list[float]
    label: str = ""


def make_client() -> TestClient:
    app = create_service_app(ServiceSettings(service_name="test", replica_name="r1"), title="t")
    router = APIRouter(route_class=OrjsonRoute)

    @router.post("/search")
    async def search(query: Query) -> dict[str, float | str]:
        return {"sum": sum(query.vector), "label": query.label}

    app.include_router(router)
    return TestClient(app, raise_server_exceptions=False)


def test_a_json_body_is_parsed_and_validated() -> None:
    client = make_client()
    answer = client.post("/search", json={"vector": [0.5, 0.25], "label": "é"})
    assert answer.status_code == 200
    assert answer.json() == {"sum": 0.75, "label": "é"}
    wrong = client.post("/search", json={"vector": "nope"})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "validation_error"


def test_what_json_does_not_allow_is_a_422_in_the_error_shape() -> None:
    client = make_client()
    for body in (b'{"vector": [NaN]}', b'{"vector": [Infinity]}', b'{"vector": [1,', b'{"label": "\xff"}'):
        answer = client.post("/search", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, body
        assert set(answer.json()["error"]) >= {"code", "message", "request_id"}
