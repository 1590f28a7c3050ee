"""Request parameters more than one router takes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query

from ragfleet.common.contracts import NAME_PATTERN, TENANT_HEADER

Collection = Annotated[str, Query(pattern=NAME_PATTERN, description="the collection to write to")]
Tenant = Annotated[
    str, Header(alias=TENANT_HEADER, pattern=NAME_PATTERN, description="set by the gateway from the API key")
]
