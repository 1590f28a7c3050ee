"""The shared app shape: error model, request ids, health, metrics."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from ragfleet.common.app import create_service_app
from ragfleet.common.config import ServiceSettings
from ragfleet.common.errors import NotFound


class Item(BaseModel):
    name: str = Field(min_length=1)
    count: int = Field(ge=1)


def make_client() -> TestClient:
    app = create_service_app(ServiceSettings(service_name="test", replica_name="r1"), title="t")

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.get("/items/{item_id}")
    async def get(item_id: str) -> dict[str, str]:
        raise NotFound(f"no item {item_id!r}")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return TestClient(app, raise_server_exceptions=False)


def test_validation_error_names_the_field() -> None:
    response = make_client().post("/items", json={"name": "x", "count": 0})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "body.count" in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]


def test_unknown_route_and_method_are_json() -> None:
    client = make_client()
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no route GET /nope"
    wrong_method = client.delete("/items")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_domain_error_and_unexpected_error() -> None:
    client = make_client()
    response = client.get("/items/abc", headers={"x-request-id": "req-123"})
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "no item 'abc'", "request_id": "req-123"}
    }
    boom = client.get("/boom", headers={"x-request-id": "req-boom"})
    assert boom.status_code == 500
    assert "secret" not in boom.text
    # The id to quote when reporting it, as the message asks.
    assert boom.json()["error"] == {
        "code": "internal_error",
        "message": "internal error; quote the request id when reporting it",
        "request_id": "req-boom",
    }


def test_request_id_is_generated_when_missing_or_unsafe() -> None:
    client = make_client()
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    unsafe = client.get("/healthz", headers={"x-request-id": "a b\nc"}).headers["x-request-id"]
    assert unsafe != "a b\nc"


def test_health_ready_and_metrics() -> None:
    client = make_client()
    assert client.get("/healthz").json() == {"status": "ok", "service": "test"}
    with client:
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    client.post("/items", json={"name": "x", "count": 1})
    metrics = client.get("/metrics").text
    assert 'ragfleet_http_requests_total{method="POST",route="/items",service="test",status="200"}' in metrics


def test_openapi_documents_the_error_model_for_422() -> None:
    schema = make_client().get("/openapi.json").json()
    unprocessable = schema["paths"]["/items"]["post"]["responses"]["422"]
    ref = unprocessable["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ErrorResponse"
    error = schema["components"]["schemas"]["ErrorResponse"]["properties"]["error"]
    assert error["required"] == ["code", "message", "request_id"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_every_response_says_how_long_it_took() -> None:
    client = make_client()
    for response in (client.get("/healthz"), client.get("/nope"), client.post("/items", json={})):
        took = response.headers["x-response-time"]
        assert took.endswith("ms") and float(took.removesuffix("ms")) >= 0, took


def test_docs_can_be_switched_off() -> None:
    app = create_service_app(ServiceSettings(service_name="test", docs_enabled=False), title="t")
    client = TestClient(app)
    for path in ("/docs", "/redoc", "/openapi.json"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert make_client().get("/openapi.json").status_code == 200


def test_with_a_metrics_port_the_main_port_answers_404_for_metrics() -> None:
    app = create_service_app(ServiceSettings(service_name="test", metrics_port=9090), title="t")
    response = TestClient(app).get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_feature_whose_redis_is_down_answers_503_without_its_address() -> None:
    from redis.asyncio import Redis

    app = create_service_app(ServiceSettings(service_name="test"), title="t")
    # Nothing listens on port 1: every command fails to connect.
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)

    @app.get("/remembered")
    async def remembered() -> dict[str, str]:
        return {"value": str(await redis.get("x"))}

    with TestClient(app) as client:
        response = client.get("/remembered")
        assert client.get("/readyz").status_code == 200
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "redis_unavailable"
    assert "127.0.0.1" not in error["message"] and ":1" not in error["message"]
