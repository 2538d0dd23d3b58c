"""A worker process's context for tests that run actors' functions directly (what an entry point opens)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.core.settings import Settings
from workers.broker import build_broker
from workers.context import WorkerContext, open_context


@contextmanager
def worker_context(settings: Settings) -> Iterator[WorkerContext]:
    """The context ``beacon worker`` opens for ``settings``, closed afterwards."""
    context = open_context(settings, build_broker(settings))
    try:
        yield context
    finally:
        context.close()
