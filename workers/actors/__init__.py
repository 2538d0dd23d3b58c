"""Every actor, declared on a broker with a context by the process that runs or enqueues them.

Each module lists its actors as :class:`ActorSpec` (function, queue, retries, time limit, ``throws``);
:func:`declare_actors` binds them to ``broker`` with ``context`` as their first argument, so an actor's
function takes what it uses as a parameter instead of reaching for a global, and a test calls it directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq import Actor, Broker

from workers.actors import analytics, ingest, integrations, system
from workers.actors.spec import ActorSpec
from workers.context import WorkerContext

SPECS: tuple[ActorSpec, ...] = (*system.ACTORS, *ingest.ACTORS, *analytics.ACTORS, *integrations.ACTORS)


def _bound(spec: ActorSpec, context: WorkerContext) -> Callable[..., None]:
    """``spec.fn`` with ``context`` as its first argument, its return value dropped: a function's result is for
    direct callers (tests, the CLI); Dramatiq keeps none and warns about every actor that returns one."""
    @functools.wraps(spec.fn)
    def run(*args: Any, **kwargs: Any) -> None:
        spec.fn(context, *args, **kwargs)

    return run


def declare_actors(broker: Broker, context: WorkerContext) -> dict[str, Actor[..., object]]:
    """Declare every actor on ``broker``, each calling its function with ``context``; by actor name."""
    return {spec.name: dramatiq.actor(actor_name=spec.name, broker=broker, queue_name=spec.queue_name,
                                      max_retries=spec.max_retries, time_limit=spec.time_limit, throws=spec.throws,
                                      **spec.options)(_bound(spec, context))
            for spec in SPECS}


__all__ = ["SPECS", "ActorSpec", "declare_actors"]
