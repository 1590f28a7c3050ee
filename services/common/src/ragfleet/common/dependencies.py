"""The one dependency idiom of every service: typed aliases over what the lifespan put on ``app.state``.

A service's ``dependencies.py`` declares one alias per part::

    SettingsDep = Annotated[GatewaySettings, from_app_state("settings")]

and routes take ``settings: SettingsDep``. The lifespan sets ``app.state.settings``; a test either
builds the app with its lifespan or sets ``app.state`` itself (no override table needed).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends
from fastapi.params import Depends as DependsParam
from starlette.requests import HTTPConnection


@functools.cache
def app_state_reader(attribute: str) -> Callable[[HTTPConnection], Awaitable[Any]]:
    """The dependency reading ``app.state.<attribute>`` (one function per attribute, so
    ``app.dependency_overrides[app_state_reader("settings")]`` works too).

    ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a hop per request.
    ``HTTPConnection``: the same alias serves HTTP routes and WebSockets.
    """

    async def read(connection: HTTPConnection) -> Any:
        return getattr(connection.app.state, attribute)

    read.__name__ = read.__qualname__ = f"app_state_{attribute}"
    return read


def from_app_state(attribute: str) -> DependsParam:
    """``Depends`` on ``app.state.<attribute>``, for ``Annotated[Type, from_app_state("name")]``."""
    return Depends(app_state_reader(attribute))
