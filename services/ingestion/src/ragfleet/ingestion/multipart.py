"""A multipart/form-data body as a stream of parts, read as it arrives.

Starlette's form parser spools each file to a temporary file and hands it over only once the whole
body has been read; ingestion wants each file's bytes while they arrive, to stage them in Redis a
piece at a time and to refuse a body at the byte that crosses a limit. This is python-multipart's
streaming parser (the one Starlette drives) with its callbacks turned into events, and headers
decoded the way Starlette decodes them.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from ragfleet.common.errors import BadRequest


@dataclass(frozen=True)
class PartStart:
    name: str
    filename: str | None  # set: the part is a file; None: a plain form field
    content_type: str | None


@dataclass(frozen=True)
class PartData:
    data: bytes


@dataclass(frozen=True)
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def _decode(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _boundary_and_charset(content_type: str) -> tuple[bytes, str]:
    _, params = parse_options_header(content_type)
    if b"boundary" not in params:
        raise BadRequest("the multipart body has no boundary in its Content-Type")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        return params[b"boundary"], codecs.lookup(charset).name
    except LookupError:
        return params[b"boundary"], "latin-1"


def decode_field(raw: bytes, content_type: str) -> str:
    """A plain form field's value as text, in the body's charset (UTF-8 unless it says otherwise)."""
    return _decode(raw, _boundary_and_charset(content_type)[1])


async def parts(body: AsyncIterator[bytes], content_type: str) -> AsyncIterator[Event]:
    """The body's parts as events, in order: each network chunk is parsed and its events yielded
    before the next chunk is read, so nothing but the chunk in hand is held."""
    boundary, charset = _boundary_and_charset(content_type)
    events: list[Event] = []
    header_name, header_value = bytearray(), bytearray()
    headers: dict[bytes, bytes] = {}

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(headers.get(b"content-disposition", b"").decode("latin-1"))
        if b"name" not in options:
            raise BadRequest('a multipart part has no "name" in its Content-Disposition header')
        filename = options.get(b"filename")
        content_type = headers.get(b"content-type")
        events.append(
            PartStart(
                name=_decode(options[b"name"], charset),
                filename=None if filename is None else _decode(filename, charset),
                content_type=None if content_type is None else content_type.decode("latin-1"),
            )
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        events.append(PartData(data[start:end]))

    def on_part_end() -> None:
        events.append(PartEnd())

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    async for chunk in body:
        try:
            parser.write(chunk)
        except FormParserError as exc:
            raise BadRequest(f"the multipart body is malformed: {exc}") from exc
        for event in events:
            yield event
        events.clear()
    if parser.state != MultipartState.END:
        raise BadRequest("the multipart body ends before its closing boundary")
