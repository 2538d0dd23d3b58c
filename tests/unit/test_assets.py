"""asset(): fingerprinted names from the build's manifest, the plain file without a build, else a clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.core.assets import Assets, AssetsNotBuilt


@pytest.fixture
def static(tmp_path: Path) -> Path:
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "beacon.css").write_text("body{}")
    return tmp_path


def build(static: Path, manifest: dict[str, str]) -> None:
    (static / "dist").mkdir(exist_ok=True)
    (static / "dist" / "manifest.json").write_text(json.dumps(manifest))


def test_built_names_come_from_the_manifest(static: Path) -> None:
    build(static, {"css/beacon.css": "css/beacon.0123456789ab.css"})
    assert "/static/dist/css/beacon.0123456789ab.css" == Assets(static).url("css/beacon.css")


def test_a_new_build_is_picked_up(static: Path) -> None:
    """A rebuild while the server runs (make assets) changes the names without a restart."""
    assets = Assets(static)
    build(static, {"css/beacon.css": "css/beacon.000000000000.css"})
    assert assets.url("css/beacon.css").endswith(".000000000000.css")
    build(static, {"css/beacon.css": "css/beacon.111111111111.css"})
    manifest = static / "dist" / "manifest.json"
    os.utime(manifest, (manifest.stat().st_atime, manifest.stat().st_mtime + 5))
    assert assets.url("css/beacon.css").endswith(".111111111111.css")


def test_without_a_build_a_plain_file_is_served_as_it_is(static: Path) -> None:
    assert "/static/css/beacon.css" == Assets(static).url("css/beacon.css")


@pytest.mark.parametrize("built", [False, True], ids=["not-built", "not-in-manifest"])
def test_a_bundle_without_a_build_is_a_clear_error(static: Path, built: bool) -> None:
    if built:
        build(static, {"css/beacon.css": "css/beacon.0123456789ab.css"})
    with pytest.raises(AssetsNotBuilt, match="make assets"):
        Assets(static).url("dashboard.js")
