#!/usr/bin/env python3
"""Build a Beacon release on the Ansible controller: the source tree plus a wheelhouse, in one tarball.

``build_release.py name SRC`` prints the release name (``<version>-<hash of the source files>``);
``build_release.py build SRC OUT NAME PYTHON TARGET_PYTHON_VERSION TARGET_MACHINE TARGET_GLIBC`` writes
``OUT/NAME-<target>.tar.gz`` unless it already exists. The wheelhouse is resolved for the *host's*
interpreter (version, glibc, machine), not the controller's: environment markers such as
``python_full_version < "3.11.3"`` must be evaluated for the Python that will run Beacon.
The host then installs from the wheelhouse with ``pip --no-index``: it needs no internet access.
The browser assets are built on the controller too (``npm ci`` and ``app/frontend/build.mjs``, so the
controller needs Node.js and npm) and shipped in the tarball and the wheel under ``app/static/dist/``.
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


ASSETS_DIR = Path("app/static/dist")


def build_assets(tree: Path) -> list[str]:
    """Build the fingerprinted browser assets in ``tree``; return their paths relative to it."""
    frontend = tree / "app" / "frontend"
    if not (frontend / "package.json").exists():
        return []
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise SystemExit("building the browser assets needs Node.js and npm on the controller: "
                         "apt-get install nodejs npm")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=frontend, check=True)
    subprocess.run(["node", "build.mjs"], cwd=frontend, check=True)
    return sorted(str(p.relative_to(tree)) for p in (tree / ASSETS_DIR).rglob("*") if p.is_file())


def target_tag(python_version: str, machine: str, glibc: str) -> str:
    return f"py{python_version}-{machine}-glibc{glibc}"


def manylinux_tags(glibc: str, machine: str) -> list[str]:
    """Every manylinux platform tag a host with this glibc accepts (pip does not expand them itself)."""
    major, minor = (int(part) for part in glibc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
    tags += [f"{name}_{machine}" for name, needed in legacy.items() if major == 2 and minor >= needed]
    return tags


def _target_environment(python_version: str, machine: str) -> dict[str, str]:
    return {
        "implementation_name": "cpython", "implementation_version": python_version, "os_name": "posix",
        "platform_machine": machine, "platform_python_implementation": "CPython", "platform_release": "",
        "platform_system": "Linux", "platform_version": "", "python_full_version": python_version,
        "python_version": ".".join(python_version.split(".")[:2]), "sys_platform": "linux",
    }


def missing_requirements(wheelhouse: Path, python_version: str, machine: str) -> list[str]:
    """Requirements of the wheels in ``wheelhouse`` that apply on the target and no wheel there satisfies."""
    import zipfile
    from email.parser import HeaderParser

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename

    available = {}
    for wheel in wheelhouse.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        available[canonicalize_name(name)] = version
    missing = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = HeaderParser().parsestr(archive.read(metadata_name).decode())
        extras = [""]  # extras requested of this wheel are not tracked; base requirements suffice here
        for line in metadata.get_all("Requires-Dist") or []:
            req = Requirement(line)
            env = _target_environment(python_version, machine)
            if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in extras):
                continue
            have = available.get(canonicalize_name(req.name))
            if have is None or (req.specifier and have not in req.specifier):
                missing.append(str(Requirement(f"{req.name}{req.specifier}")))
    return sorted(set(missing))


def _is_pure(wheel: Path) -> bool:
    from packaging.utils import parse_wheel_filename

    return all(tag.abi == "none" and tag.platform == "any" for tag in parse_wheel_filename(wheel.name)[3])


def build(src: Path, out: Path, name: str, python: str, target: tuple[str, str, str]) -> Path:
    """Source tree plus a wheelhouse for the target, in ``out``.

    1. ``pip wheel`` on the controller resolves the dependency set (with constraints.txt) and builds the
       packages published only as sdists (pure Python: their wheels run anywhere).
    2. Every platform-specific wheel is replaced by the same version's wheel for the target's Python,
       glibc and machine (``pip download --no-deps --platform ...``).
    3. Requirements whose environment markers hold on the target but not on the controller are added.
    """
    python_version, machine, glibc = target
    archive = out / f"{name}-{target_tag(*target)}.tar.gz"
    if archive.exists():
        return archive
    out.mkdir(parents=True, exist_ok=True)
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    major, minor = python_version.split(".")[:2]
    for_target = [
        "--only-binary=:all:", "--no-deps", "--implementation", "cp", "--python-version", python_version,
        "--abi", f"cp{major}{minor}",
        *(arg for tag in manylinux_tags(glibc, machine) for arg in ("--platform", tag)),
    ]
    with tempfile.TemporaryDirectory(dir=out, prefix=".build-") as tmp:
        wheelhouse = Path(tmp) / "wheelhouse"
        controller = Path(tmp) / "controller-wheels"
        # Build from a copy: pip/setuptools write build/ and *.egg-info into the tree they build.
        tree = Path(tmp) / "src"
        files = source_files(src)
        for rel in files:
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, tree / rel)
        # Before the wheel is built, so that the wheel's app/static/ holds them as well.
        assets = build_assets(tree)
        constraints = ["--constraint", str(tree / "constraints.txt")] if (tree / "constraints.txt").exists() else []
        subprocess.run([*pip, "wheel", "--wheel-dir", str(controller), *constraints, str(tree)], check=True)
        wheelhouse.mkdir()
        from packaging.utils import parse_wheel_filename

        for wheel in sorted(controller.glob("*.whl")):
            if _is_pure(wheel):
                shutil.copy2(wheel, wheelhouse / wheel.name)
            else:
                dist, version, _, _ = parse_wheel_filename(wheel.name)
                subprocess.run(
                    [*pip, "download", "--dest", str(wheelhouse), *for_target, f"{dist}=={version}"], check=True
                )
        # pip evaluates environment markers against the Python running it, not the target: add what the
        # host's Python needs and the controller's did not (e.g. async-timeout below Python 3.11.3).
        for _ in range(20):
            missing = missing_requirements(wheelhouse, python_version, machine)
            if not missing:
                break
            for requirement in missing:
                fetched = subprocess.run(
                    [*pip, "download", "--dest", str(wheelhouse), *for_target, *constraints, requirement],
                    check=False,
                )
                if fetched.returncode != 0:
                    subprocess.run(
                        [*pip, "wheel", "--no-deps", "--wheel-dir", str(wheelhouse), *constraints, requirement],
                        check=True,
                    )
        else:
            raise SystemExit(f"could not complete the wheelhouse for Python {python_version}: {missing}")
        foreign = [
            w.name for w in wheelhouse.glob("*.whl")
            if any(t.interpreter.startswith("cp") and t.interpreter != f"cp{major}{minor}" and t.abi != "abi3"
                   for t in parse_wheel_filename(w.name)[3])
        ]
        if foreign:
            raise SystemExit(f"wheels built for another Python than {python_version}: {foreign}")
        partial = Path(tmp) / "release.tar.gz"
        with tarfile.open(partial, "w:gz") as tar:
            for rel in [*files, *assets]:
                tar.add(tree / rel, arcname=rel, recursive=False)
            tar.add(wheelhouse, arcname="wheelhouse")
        partial.rename(archive)
    return archive


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "name":
        print(release_name(Path(argv[1]).resolve()))
        return 0
    if len(argv) == 8 and argv[0] == "build":
        target = (argv[5], argv[6], argv[7])
        print(build(Path(argv[1]).resolve(), Path(argv[2]), argv[3], argv[4], target))
        return 0
    if len(argv) == 4 and argv[0] == "tag":
        print(target_tag(argv[1], argv[2], argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
