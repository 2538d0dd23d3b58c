"""Fingerprinted static assets: ``asset("css/beacon.css")`` in templates gives the built file's URL.

``make assets`` (``app/frontend/build.mjs``) writes ``app/static/dist/`` with files named
``name.<sha256 prefix>.ext`` and ``manifest.json`` mapping each source name to its built file; Nginx serves
those with a one-year cache. Without a build, a name that exists as a plain file under ``app/static/`` falls
back to that file (uncached, unminified, a warning is logged once); a bundle that has no plain source there
(``dashboard.js``) raises :class:`AssetsNotBuilt`, which tells to run ``make assets``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from threading import Lock

from app.core.errors import AppError

logger = logging.getLogger("beacon.assets")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_URL = "/static/"
DIST = "dist"


class AssetsNotBuilt(AppError):
    """The front-end assets were not built (``make assets``)."""

    status_code = 500
    title = "Assets not built"


class Assets:
    """Resolves asset names through ``dist/manifest.json``, re-read when the file changes."""

    def __init__(self, static_dir: Path = STATIC_DIR, url: str = STATIC_URL) -> None:
        self._static = static_dir
        self._url = url
        self._manifest_path = static_dir / DIST / "manifest.json"
        self._manifest: dict[str, str] | None = None
        self._mtime: float | None = None
        self._warned = False
        self._lock = Lock()

    def _load(self) -> dict[str, str] | None:
        try:
            mtime = self._manifest_path.stat().st_mtime
        except FileNotFoundError:
            return None
        with self._lock:
            if self._manifest is None or mtime != self._mtime:
                manifest = json.loads(self._manifest_path.read_text())
                if not isinstance(manifest, dict):
                    raise AssetsNotBuilt(f"{self._manifest_path} is not a JSON object; run `make assets`")
                self._manifest, self._mtime = {str(k): str(v) for k, v in manifest.items()}, mtime
            return self._manifest

    def url(self, name: str) -> str:
        """The URL of the built asset ``name`` (a path relative to the sources, e.g. ``js/pages.js``)."""
        manifest = self._load()
        if manifest is not None:
            built = manifest.get(name)
            if built is None:
                raise AssetsNotBuilt(f"asset {name!r} is not in {self._manifest_path}; run `make assets`")
            return f"{self._url}{DIST}/{built}"
        if (self._static / name).is_file():
            if not self._warned:
                self._warned = True
                logger.warning("front-end assets are not built (run `make assets`): serving %s unfingerprinted",
                               name)
            return f"{self._url}{name}"
        raise AssetsNotBuilt(f"asset {name!r} needs a build: run `make assets` ({self._manifest_path} is missing)")
