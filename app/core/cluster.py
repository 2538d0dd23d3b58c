"""A multi-host installation's PostgreSQL cluster (Patroni's REST API) and Redis master (its Sentinels), for
``beacon check`` (app/checks.py) and the monitoring page."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec

from app.core.monitoring import Part, short_error
from app.core.redis import sentinel_master_address
from app.core.settings import Settings

MAX_REPLICA_LAG_BYTES = 16 * 1024 * 1024
"""A replica further behind than this fails ``beacon check`` (Patroni's ``lag`` of the member, bytes of WAL)."""


async def patroni_cluster(settings: Settings) -> dict[str, Any]:
    """Patroni's ``GET /cluster`` from the first member that answers: ``{"members": [{"name", "role",
    "state", "host", "port", "lag"}, ...]}`` (see Patroni's REST API documentation). Raises if none answers."""
    errors = []
    async with httpx.AsyncClient(timeout=2.0) as client:
        for url in settings.database.patroni_urls:
            try:
                response = await client.get(f"{url}/cluster")
                response.raise_for_status()
                return dict(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(f"{url}: {type(exc).__name__}")
    raise RuntimeError("no Patroni member answered (" + ", ".join(errors) + ")")


def cluster_problem(state: dict[str, Any]) -> str | None:
    """None when the cluster has a running leader, a synchronous standby and no replica lagging too far."""
    members = state.get("members", [])
    if not any(m.get("role") == "leader" and m.get("state") == "running" for m in members):
        return "no running primary"
    if len(members) > 1 and not any(m.get("role") == "sync_standby" for m in members):
        return "no synchronous standby: commits are not yet safe from losing the primary"
    for member in members:
        lag = member.get("lag")
        if member.get("role") != "leader" and (not isinstance(lag, int) or lag > MAX_REPLICA_LAG_BYTES):
            return f"replica {member.get('name')} is behind by {lag} B"
    return None


class ClusterMember(msgspec.Struct, kw_only=True):
    """One PostgreSQL member as Patroni's ``GET /cluster`` lists it."""

    name: str
    role: str
    """``leader``, ``sync_standby`` or ``replica`` (Patroni's roles)."""
    state: str
    """``running`` (a leader) or ``streaming`` (a replica), or what Patroni says instead."""
    host: str
    port: int | None = None
    lag: int | str | None = None
    """Bytes of WAL behind the leader (``None`` for the leader; Patroni says ``unknown`` when it cannot tell)."""


class Cluster(Part, kw_only=True):
    """The PostgreSQL members (leader first) and the Redis master of a multi-host installation."""

    members: list[ClusterMember] = msgspec.field(default_factory=list)
    problem: str | None = None
    """What makes ``beacon check`` fail about the PostgreSQL cluster (no primary, no synchronous standby, a
    replica more than 16 MiB behind), else ``None``."""
    redis_master: str | None = None
    """``host:port`` of the Redis master according to the Sentinels (``None`` without Sentinels)."""
    redis_error: str | None = None
    """Why no Sentinel named a master, else ``None``."""


async def cluster_state(settings: Settings) -> Cluster | None:
    """The cluster part of the monitoring report; ``None`` on a single host (no Patroni, no Sentinels).

    Raises ``RuntimeError`` when no Patroni member answers (the report shows it as the part's error).
    """
    if not settings.database.patroni_urls and not settings.redis.sentinels:
        return None
    cluster = Cluster()
    if settings.redis.sentinels:
        try:
            master = await asyncio.to_thread(sentinel_master_address, settings.redis)
        except Exception as exc:
            cluster.redis_error = short_error(exc)
        else:
            cluster.redis_master = f"{master[0]}:{master[1]}" if master else None
    if settings.database.patroni_urls:
        state = await patroni_cluster(settings)
        cluster.problem = cluster_problem(state)
        members = sorted(state.get("members", []), key=lambda m: (m.get("role") != "leader", str(m.get("name"))))
        cluster.members = [ClusterMember(name=str(m.get("name", "?")), role=str(m.get("role", "?")),
                                         state=str(m.get("state", "?")), host=str(m.get("host", "?")),
                                         port=m.get("port") if isinstance(m.get("port"), int) else None,
                                         lag=m.get("lag") if isinstance(m.get("lag"), int | str) else None)
                           for m in members]
    return cluster
