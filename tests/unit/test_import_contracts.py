"""The import contracts of pyproject.toml (run by `make lint`) hold for the tree and catch each kind of violation.

Each case copies the Python sources and pyproject.toml into a temporary directory, writes one import that
breaks a contract, and runs `lint-imports` there: it must fail and name the contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


SKIPPED_FOLDERS = {"__pycache__", "node_modules", "frontend", "static", "templates"}


def only_python(folder: str, names: list[str]) -> set[str]:
    """copytree's ``ignore``: everything but Python files and the folders that may hold them."""
    return {name for name in names if name in SKIPPED_FOLDERS
            or (not name.endswith(".py") and not (Path(folder) / name).is_dir())}


def copy_sources(target: Path) -> None:
    """The packages' .py files and pyproject.toml, nothing else (no assets, no node_modules)."""
    for package in ("app", "services", "workers"):
        shutil.copytree(ROOT / package, target / package, ignore=only_python)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, ahead of the installed checkout.
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=where, env=env, capture_output=True, text=True,
                          check=False, timeout=120)


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    """The sources as they are keep all the contracts."""
    copy_sources(tmp_path)
    result = lint_imports(tmp_path)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    pytest.param("app/core/errors.py", "def _later() -> None:\n    import app.domain.sites.services\n",
                 "Layers: entry points", id="core-imports-a-domain-inside-a-function"),
    pytest.param("app/realtime/app.py", "import app.domain.accounts.session\n",
                 "Layers: entry points", id="realtime-imports-a-domain"),
    pytest.param("services/ingest/logic.py", "import services.analytics.engine\n",
                 "Services are independent of each other", id="service-imports-another-service"),
    pytest.param("services/ingest/live.py", "import app.realtime.hub\n",
                 "use only its publishing", id="service-imports-the-realtime-server"),
    pytest.param("workers/actors/system.py", "import services.ingest.routes\n",
                 "Workers run services' logic", id="worker-imports-a-service-route"),
    pytest.param("app/domain/accounts/services.py", "import app.domain.sites.services\n",
                 "No import cycles", id="cycle-between-domains"),
])
def test_a_violation_fails(tmp_path: Path, module: str, line: str, contract: str) -> None:
    """One import against a contract makes lint-imports exit non-zero and name the broken contract."""
    copy_sources(tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + "\n\n" + line)
    result = lint_imports(tmp_path)
    assert 1 == result.returncode, result.stdout + result.stderr
    broken = result.stdout.partition("Broken contracts")[2]
    assert contract in broken, result.stdout
