#!/usr/bin/env python3
"""Build a Beacon release on the Ansible controller: the source tree plus a wheelhouse, in one tarball.

``build_release.py name SRC`` prints the release name (``<version>-<hash of the source files>``);
``build_release.py build SRC OUT NAME PYTHON`` writes ``OUT/NAME.tar.gz`` unless it already exists.
The host then installs from the wheelhouse with ``pip --no-index``: it needs no internet access.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

# Never shipped: version control, local environments, caches and build output.
EXCLUDED_DIRS = {".git", ".venv", "venv", "var", "node_modules", "build", "dist", ".mypy_cache",
                 ".ruff_cache", ".pytest_cache", "__pycache__", ".build"}


def source_files(src: Path) -> list[str]:
    """Relative paths of the files that make up the release, sorted."""
    if (src / ".git").exists():
        listed = subprocess.run(
            ["git", "-C", str(src), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True,
        ).stdout.decode().split("\0")
        files = [p for p in listed if p and (src / p).is_file()]
    else:
        files = []
        for root, dirs, names in os.walk(src):
            dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS and not d.endswith(".egg-info")]
            files.extend(str((Path(root) / n).relative_to(src)) for n in names)
    return sorted(p for p in files if not set(Path(p).parts) & EXCLUDED_DIRS and not p.endswith(".pyc"))


def release_name(src: Path) -> str:
    version = tomllib.loads((src / "pyproject.toml").read_text())["project"]["version"]
    digest = hashlib.sha256()
    for rel in source_files(src):
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256((src / rel).read_bytes()).digest())
    return f"{version}-{digest.hexdigest()[:12]}"


def build(src: Path, out: Path, name: str, python: str) -> Path:
    target = out / f"{name}.tar.gz"
    if target.exists():
        return target
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".build-") as tmp:
        wheelhouse = Path(tmp) / "wheelhouse"
        command = [python, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                   "--wheel-dir", str(wheelhouse)]
        if (src / "constraints.txt").exists():
            command += ["--constraint", str(src / "constraints.txt")]
        # Build from a copy: pip/setuptools write build/ and *.egg-info into the tree they build.
        tree = Path(tmp) / "src"
        for rel in source_files(src):
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, tree / rel)
        subprocess.run([*command, str(tree)], check=True)
        partial = Path(tmp) / "release.tar.gz"
        with tarfile.open(partial, "w:gz") as tar:
            for rel in source_files(src):
                tar.add(tree / rel, arcname=rel, recursive=False)
            tar.add(wheelhouse, arcname="wheelhouse")
        partial.rename(target)
    return target


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "name":
        print(release_name(Path(argv[1]).resolve()))
        return 0
    if len(argv) == 5 and argv[0] == "build":
        print(build(Path(argv[1]).resolve(), Path(argv[2]), argv[3], argv[4]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
