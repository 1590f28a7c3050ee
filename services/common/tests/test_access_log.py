"""Access lines: one JSON object per request, in the shape of every other log line, written once
per event-loop turn."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ragfleet.common.app import create_service_app
from ragfleet.common.config import ServiceSettings
from ragfleet.common.logging import ACCESS_LOGGER, MAX_HELD_ACCESS_LINES, AccessLog, JsonFormatter, Timestamps


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def lines_of(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def access_logger_level() -> Iterator[None]:
    logger = logging.getLogger(ACCESS_LOGGER)
    level = logger.level
    yield
    logger.setLevel(level)


def write_one(log: AccessLog, path: str = "/v1/search") -> None:
    log.write(
        "POST",
        path,
        200,
        route=path,
        duration_s=0.0012345,
        request_id="req-1",
        trace_id=0xABC,
        span_id=0xDEF,
    )


def test_a_request_is_one_line_with_its_ids_route_status_and_duration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = create_service_app(ServiceSettings(service_name="svc", replica_name="r1"), title="t")

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    capsys.readouterr()
    with TestClient(app) as client:
        response = client.get("/things/7", headers={"x-request-id": "abc-123"})
        client.get("/healthz")  # probes are not logged
    access = [line for line in lines_of(capsys.readouterr().err) if line.get("logger") == ACCESS_LOGGER]
    assert response.status_code == 200
    assert len(access) == 1
    line = access[0]
    assert list(line)[:5] == ["ts", "level", "service", "logger", "message"]  # JsonFormatter's order
    assert line["level"] == "INFO"
    assert line["service"] == "svc"
    assert line["message"] == "GET /things/7 200"
    assert line["route"] == "/things/{thing_id}"  # the template, never the raw path
    assert line["status"] == 200
    assert line["request_id"] == "abc-123" == response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", str(line["trace_id"]))
    assert re.fullmatch(r"[0-9a-f]{16}", str(line["span_id"]))
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(line["ts"]))


def test_the_lines_of_one_loop_turn_leave_in_one_write() -> None:
    stream = CountingStream()
    log = AccessLog("svc", stream)

    async def three_requests_then_a_turn() -> int:
        for _ in range(3):
            write_one(log)
        held = stream.writes
        await asyncio.sleep(0)  # the turn ends: the flush scheduled by the first line runs
        return held

    assert asyncio.run(three_requests_then_a_turn()) == 0
    assert stream.writes == 1
    lines = lines_of(stream.getvalue())
    assert len(lines) == 3
    assert lines[0]["trace_id"] == f"{0xABC:032x}" and lines[0]["span_id"] == f"{0xDEF:016x}"
    assert lines[0]["duration_ms"] == 1.234


def test_a_turn_that_never_ends_still_holds_a_bounded_number_of_lines() -> None:
    stream = CountingStream()
    log = AccessLog("svc", stream)

    async def busy() -> None:
        for _ in range(MAX_HELD_ACCESS_LINES * 2 + 1):
            write_one(log)
        assert stream.writes == 2
        assert len(lines_of(stream.getvalue())) == MAX_HELD_ACCESS_LINES * 2

    asyncio.run(busy())
    assert len(lines_of(stream.getvalue())) == MAX_HELD_ACCESS_LINES * 2 + 1


def test_without_an_event_loop_a_line_is_written_at_once() -> None:
    stream = CountingStream()
    write_one(AccessLog("svc", stream))
    assert stream.writes == 1 and len(lines_of(stream.getvalue())) == 1


def test_it_follows_the_access_loggers_level(access_logger_level: None) -> None:
    log = AccessLog("svc", io.StringIO())
    assert log.enabled()
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
    assert not log.enabled()


def test_its_timestamp_matches_the_formatters() -> None:
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, "", 0, "m", None, None)
    formatted = json.loads(JsonFormatter("svc").format(record))
    assert Timestamps().format(record.created) == formatted["ts"]
