"""Every actor is declared on the broker the entry point builds, with the options Beacon's conventions ask for."""

from __future__ import annotations

from app.core.settings import load_settings
from workers.actors import _bound, declare_actors
from workers.actors.spec import PERMANENT, ActorSpec
from workers.broker import build_broker
from workers.context import open_context

ENVIRONMENT = {
    "BEACON_DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/beacon",
    "BEACON_REDIS_URL": "redis://127.0.0.1:6379/0",
    "BEACON_SECRET_KEY": "x" * 40,
    "BEACON_INTERNAL_TOKEN": "token",
    "BEACON_REDIS_PREFIX": "b1:",
}


def test_actors_are_declared_on_the_built_broker_with_their_options() -> None:
    """Each actor has its own queue, a retry count, a time limit and the errors never retried; nothing connects."""
    settings = load_settings(ENVIRONMENT)
    broker = build_broker(settings)
    context = open_context(settings, broker)
    try:
        actors = declare_actors(broker, context)
        assert set(actors) == set(broker.get_declared_actors())
        assert "b1:dramatiq" == broker.namespace
        for actor in actors.values():
            assert "default" != actor.queue_name, actor.actor_name
            assert {"max_retries", "time_limit"} <= set(actor.options), actor.actor_name
            # Every actor never retries the permanent errors; some add their own (a refused import, Redis away
            # for a monitoring sample that is worth nothing late).
            assert PERMANENT == actor.options["throws"][:len(PERMANENT)], actor.actor_name
    finally:
        context.close()


def test_an_actor_runs_its_function_with_the_context_and_returns_nothing_to_dramatiq() -> None:
    """A function may return a figure for its direct callers; Dramatiq, which keeps no results and warns about
    every returned value, gets None."""
    seen = []

    def count_things(context: object, n: int) -> int:
        seen.append((context, n))
        return n * 2

    context = object()
    run = _bound(ActorSpec(count_things, queue_name="system", max_retries=0, time_limit=1000), context)
    assert (None, [(context, 21)], "count_things") == (run(21), seen, run.__name__)
