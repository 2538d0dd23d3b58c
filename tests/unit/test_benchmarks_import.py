"""Every benchmark module imports: benchmarks run on demand, not in ``make test``, so a name they take from the
code (ingest's 202 message, say) can go away unnoticed until someone measures."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted(Path(__file__).resolve().parents[1].joinpath("benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=[path.stem for path in BENCHMARKS])
def test_benchmark_module_imports(path: Path) -> None:
    importlib.import_module(f"tests.benchmarks.{path.stem}")
