"""The Dramatiq broker: the one module-level global, pointed at the configured Redis by ``configure``.

Dramatiq binds actors to the global broker when they are declared, so the broker must exist at import.
It is created with an unconnected client (redis-py connects lazily) and nothing is read from the settings
until :func:`configure` runs at process start.
"""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from app.core.redis import make_redis
from app.core.settings import Settings
from workers.observability import RequestIdMiddleware

broker = RedisBroker(  # type: ignore[no-untyped-call]
    client=redis.Redis(host="127.0.0.1", port=1),  # replaced by configure(); never used as is
    # Request ids first: every other middleware's log lines of a message already carry its id.
    middleware=[RequestIdMiddleware(), AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(),
                Retries()],
)
dramatiq.set_broker(broker)


def configure(settings: Settings) -> RedisBroker:
    """Point the broker at ``settings.redis`` and load every actor."""
    client = make_redis(settings.redis)
    broker.client = client
    # The broker's Lua scripts are registered on its client; re-register them on the real one.
    broker.scripts = {name: client.register_script(script.script) for name, script in broker.scripts.items()}
    broker.namespace = f"{settings.redis.key_prefix}dramatiq"
    import workers.actors  # noqa: F401 - declares the actors on this broker

    return broker
