"""How an actor is declared: its function, queue and options, bound to a broker and a context at start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DataError, ProgrammingError

PERMANENT: tuple[type[Exception], ...] = (ProgrammingError, DataError)
"""Errors that fail the same way on every retry (a statement PostgreSQL refuses as written, a value it cannot
take): Dramatiq's ``throws=`` does not retry them and logs them without a traceback."""


@dataclass(frozen=True)
class ActorSpec:
    """One actor: ``fn(context, *message_args)`` and the Dramatiq options it is declared with."""

    fn: Callable[..., Any]
    queue_name: str
    max_retries: int
    time_limit: int
    """Milliseconds."""
    throws: tuple[type[Exception], ...] = PERMANENT
    options: dict[str, Any] = field(default_factory=dict)
    """Further Dramatiq options (``max_age`` in milliseconds)."""

    @property
    def name(self) -> str:
        return self.fn.__name__
