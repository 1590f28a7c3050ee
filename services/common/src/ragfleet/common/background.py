"""Work started after an answer that nobody awaits: semantic-cache checks, fills behind degraded
answers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    """Tasks nobody awaits, each referenced here until it ends: the event loop keeps only a weak
    reference to a task, so one nobody holds can be garbage-collected before it finishes."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
