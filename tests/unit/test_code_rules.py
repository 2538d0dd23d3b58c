"""Rules of the code that import contracts cannot express, checked on the syntax tree of every module.

- Handlers (the domain's and the services') receive what they need from providers (Litestar's dependency
  injection, ``app/core/resources.py`` and ``app/domain/deps.py``) and never reach into ``request.app.state``
  (or any ``<connection>.app.state``).
- Tests and their helpers never import the benchmarks (``tests/benchmarks``); what both need lives in
  ``tests/support``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BENCHMARK_TESTS = {"tests/unit/test_nab_scorer.py"}
"""Unit tests of a benchmark's own code (the NAB scorer), which must import what they test."""


def app_state_reads(source: str) -> list[int]:
    """The line of every ``<anything>.app.state`` expression in ``source``."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr == "state"
            and isinstance(node.value, ast.Attribute) and node.value.attr == "app"]


def benchmark_imports(source: str) -> list[int]:
    """The line of every import of ``tests.benchmarks`` (or a module in it) in ``source``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(name == "tests.benchmarks" or name.startswith("tests.benchmarks.") for name in names):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param("resources = request.app.state.resources\n", [1], id="request"),
    pytest.param("x = 1\nhealth(connection.app.state.resources)\n", [2], id="connection"),
    pytest.param("def provide(state: State) -> None:\n    return state.resources\n", [], id="provider-state"),
])
def test_app_state_reads_are_found(source: str, expected: list[int]) -> None:
    """The check finds a read of ``.app.state`` however the connection is named, and not a provider's."""
    assert expected == app_state_reads(source)


RAW_ASGI = {"services/ingest/routes.py"}
"""Ingest answers /api/event with a Litestar ASGI route handler, which skips the per-request signature and
dependency machinery (the profile showed it costing more than the event's own work; see the module): it has
no provider to take resources from, so it reads the application's state it is given."""


def test_handlers_never_read_app_state() -> None:
    """No module of ``app/domain`` and no services' route module reads ``.app.state``: a handler takes a
    provider's value instead (``resources: Resources``, registered on every app by ``app.core.service``)."""
    modules = [*(ROOT / "app" / "domain").rglob("*.py"), *(ROOT / "services").rglob("routes.py")]
    found = {name: lines for path in sorted(modules)
             if (name := str(path.relative_to(ROOT))) not in RAW_ASGI and (lines := app_state_reads(path.read_text()))}
    assert {} == found


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param("from tests.benchmarks.datagen import generate\n", [1], id="from-module"),
    pytest.param("import tests.benchmarks.nab\n", [1], id="import"),
    pytest.param("from tests.benchmarks import datagen\n", [1], id="from-package"),
    pytest.param("from tests.support.datagen import generate\n", [], id="support"),
])
def test_benchmark_imports_are_found(source: str, expected: list[int]) -> None:
    """The check finds each form of importing the benchmarks, and not an import of the support helpers."""
    assert expected == benchmark_imports(source)


def test_tests_never_import_benchmarks() -> None:
    """Outside ``tests/benchmarks``, no test or helper imports a benchmark module."""
    found = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name.startswith("tests/benchmarks/") or name in BENCHMARK_TESTS:
            continue
        if lines := benchmark_imports(path.read_text()):
            found[name] = lines
    assert {} == found
