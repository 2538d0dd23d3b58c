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

broker = RedisBroker(  # type: ignore[no-untyped-call]
    client=redis.Redis(host="127.0.0.1", port=1),  # replaced by configure(); never used as is
    middleware=[AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries()],
)
dramatiq.set_broker(broker)


def configure(settings: Settings) -> RedisBroker:
    """Point the broker at ``settings.redis``; the actors are declared by importing :mod:`workers.actors`."""
    client = make_redis(settings.redis)
    broker.client = client
    # The broker's Lua scripts are registered on its client; re-register them on the real one.
    broker.scripts = {name: client.register_script(script.script) for name, script in broker.scripts.items()}
    broker.namespace = f"{settings.redis.key_prefix}dramatiq"
    return broker
