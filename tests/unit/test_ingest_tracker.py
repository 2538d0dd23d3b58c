"""The tracker stays within its size budget."""

from __future__ import annotations

import gzip

import pytest

from app.core.settings import CODE_DIR

SCRIPT = CODE_DIR / "app" / "static" / "tracker" / "script.js"


@pytest.mark.parametrize("level", [1, 5, 9])
def test_tracker_is_at_most_1_kb_gzipped(level: int) -> None:
    """At most 1024 bytes gzipped at any level Nginx might use (ours: 5)."""
    assert len(gzip.compress(SCRIPT.read_bytes(), compresslevel=level)) <= 1024


def test_tracker_speaks_the_plausible_api() -> None:
    """The global, its queue, the opt-out key and the keepalive transport are all there."""
    source = SCRIPT.read_text()
    for needle in ("w.plausible=t", "w.plausible.q", "plausible_ignore", "keepalive:!0", "navigator.webdriver",
                   "pushState", "hashchange"):
        assert needle in source
