"""The ingestion API's shape: routes in ``routers/`` (FastAPI), everything else free of the web framework,
so the service modules can be called (and tested) without a request."""

from __future__ import annotations

import ast
from pathlib import Path

import ragfleet.ingestion

PACKAGE = Path(ragfleet.ingestion.__file__).parent
WEB = {"main.py", "dependencies.py"}  # the app factory and the dependency aliases


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_only_routes_import_the_web_framework() -> None:
    services = [p for p in PACKAGE.glob("*.py") if p.name not in WEB]
    assert {"intake.py", "uploads.py", "staging.py", "index.py", "jobs.py"} <= {p.name for p in services}
    offenders = {p.name: imported(p) & {"fastapi", "starlette"} for p in services}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_route_reads_app_state_itself() -> None:
    routes = list((PACKAGE / "routers").glob("*.py"))
    assert len(routes) >= 4
    assert [p.name for p in routes if "app.state" in p.read_text() or "request.app" in p.read_text()] == []
