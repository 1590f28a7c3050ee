"""Parsing and chunking in a child process, under a deadline and a memory cap.

The parsers are linear in their input, but they run C code (lexbor, and pypdf's decoders) on
untrusted bytes: an HTML parser has inputs whose trees grow faster than the text (misnested
formatting elements are reconstructed in every paragraph), a PDF can inflate a small stream into
gigabytes. Such code cannot be interrupted from inside the process (a signal handler runs only
between bytecodes), so it runs in a child that is killed when the document's budget is spent.
One child per worker process, reused from document to document (a start costs ~0.2 s), replaced
after a kill or a crash. A document that overruns fails with ``parse_timeout``, once: the task
itself finishes normally and is acknowledged, so the document never comes back from the broker.
"""

from __future__ import annotations

import logging
import resource
import socket
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ragfleet.ingestion.chunking import Chunk, chunk_sections
from ragfleet.ingestion.parsers import DocumentError, DocumentFormat, Section, parse

log = logging.getLogger("ragfleet.ingestion.sandbox")

_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ParseOptions:
    max_html_depth: int
    max_pdf_pages: int
    chunk_size: int
    chunk_overlap: int


def _serve(conn: Connection, memory_bytes: int) -> None:
    """The child's loop: one document in, sections and chunks (or a document error) out."""
    if memory_bytes:
        # Address space, not resident memory: a decompression bomb fails with MemoryError here
        # instead of pushing the worker's pod out of memory.
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    import pypdf  # noqa: F401  loaded before the first document, so no budget pays for it

    conn.send(("ready",))
    while True:
        try:
            data, fmt, options = conn.recv()
        except (EOFError, OSError):
            return  # the worker went away
        try:
            sections = parse(
                data, fmt, max_html_depth=options.max_html_depth, max_pdf_pages=options.max_pdf_pages
            )
            chunks = chunk_sections(sections, size=options.chunk_size, overlap=options.chunk_overlap)
            reply: tuple[Any, ...] = ("ok", sections, chunks)
        except DocumentError as exc:
            reply = ("error", exc.code, exc.message)
        except MemoryError:
            limit = memory_bytes // (1024 * 1024)
            reply = ("error", "too_large_to_parse", f"parsing needed more than {limit} MiB (parse_memory_mb)")
        except RecursionError:
            reply = ("error", "too_deep", "the document is nested too deeply to parse")
        except Exception as exc:  # a parser bug on odd input: this document's problem, not the worker's
            reply = ("error", "unparseable", f"the parser failed: {type(exc).__name__}: {exc}"[:300])
        del data
        conn.send(reply)


class ParserProcess:
    """A reusable child process that parses and chunks one document at a time.

    A plain subprocess (``python -m ragfleet.ingestion.sandbox``) over a socket pair: Celery's pool
    processes are daemonic, and multiprocessing refuses children to those.
    """

    def __init__(self, memory_bytes: int) -> None:
        self._memory_bytes = memory_bytes
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._ready = False

    def start(self) -> None:
        """Start the child if it is not running, without waiting for it (a pool process calls this
        as it boots, so the interpreter start is not paid inside a document's time limit)."""
        if self._process is not None and self._process.poll() is None:
            return
        self.close()
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ragfleet.ingestion.sandbox",
                    str(theirs.fileno()),
                    str(self._memory_bytes),
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        self._conn = Connection(ours.detach())
        self._ready = False

    def _connection(self) -> Connection:
        self.start()
        assert self._conn is not None
        if not self._ready:
            if not self._conn.poll(_START_TIMEOUT_S) or self._conn.recv() != ("ready",):
                raise RuntimeError(f"the parser process did not start within {_START_TIMEOUT_S}s")
            self._ready = True
        return self._conn

    def run(
        self, data: bytes, fmt: DocumentFormat, options: ParseOptions, *, time_limit_s: float
    ) -> tuple[list[Section], list[Chunk]]:
        """Sections and chunks of one document; ``DocumentError`` when it is refused or overruns."""
        try:
            conn = self._connection()
            conn.send((data, fmt, options))
            finished = conn.poll(time_limit_s)
            reply = conn.recv() if finished else None
        except (EOFError, OSError):
            code = self._process.wait(5) if self._process is not None else None
            self.close()
            raise DocumentError(
                "parser_crashed", f"the parser process died on this document (exit code {code})"
            ) from None
        except BaseException:
            # Interrupted (the task's soft time limit, a shutdown): the child may still answer
            # this document later, and that answer must never be read as the next one's.
            self.close()
            raise
        if reply is None:
            self.close()
            raise DocumentError(
                "parse_timeout",
                f"parsing and chunking did not finish within {time_limit_s:.1f}s (the per-document "
                "budget: parse_time_base_s + parse_time_per_mb_s per MiB); the document is too large "
                "or too convoluted",
            )
        if reply[0] == "error":
            raise DocumentError(reply[1], reply[2])
        return reply[1], reply[2]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait(5)
            self._process = None


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
