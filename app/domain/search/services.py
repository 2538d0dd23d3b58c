"""Full-text search over the sites, goals and annotations a user can see.

Each table has a generated ``tsvector`` column with a GIN index (migration 0003); the query is parsed
with ``websearch_to_tsquery`` so users can type words, "phrases" and -exclusions, and the last word also
matches as a prefix so results appear while typing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError

QUERY_MAX = 200
LIMIT = 50


@dataclass(frozen=True)
class Hit:
    kind: str
    """``site``, ``goal`` or ``annotation``."""
    domain: str
    title: str
    rank: float


_SQL = text("""
WITH q AS (SELECT websearch_to_tsquery('simple', :q) || to_tsquery('simple', :prefix) AS simple_q,
                  websearch_to_tsquery('english', :q) || to_tsquery('english', :prefix) AS english_q),
visible AS (SELECT s.id, s.domain, s.search FROM sites s JOIN memberships m ON m.site_id = s.id
            WHERE m.user_id = :user_id)
SELECT 'site' AS kind, v.domain, v.domain AS title, ts_rank(v.search, q.simple_q) AS rank
  FROM visible v, q WHERE v.search @@ q.simple_q
UNION ALL
SELECT 'goal', v.domain, g.display_name, ts_rank(g.search, q.simple_q)
  FROM goals g JOIN visible v ON v.id = g.site_id, q WHERE g.search @@ q.simple_q
UNION ALL
SELECT 'annotation', v.domain, a.date::text || ': ' || a.body, ts_rank(a.search, q.english_q)
  FROM annotations a JOIN visible v ON v.id = a.site_id, q WHERE a.search @@ q.english_q
ORDER BY rank DESC, title LIMIT :limit
""")


def _prefix_query(query: str) -> str:
    words = re.findall(r"\w+", query)
    return f"{words[-1]}:*" if words else ""


async def search(session: AsyncSession, user_id: int, query: str) -> list[Hit]:
    query = query.strip()
    if not query:
        raise ClientError("q: type something to search for")
    if len(query) > QUERY_MAX:
        raise ClientError(f"q: at most {QUERY_MAX} characters")
    rows = await session.execute(_SQL, {"q": query, "prefix": _prefix_query(query), "user_id": user_id,
                                        "limit": LIMIT})
    return [Hit(kind, domain, title, float(rank)) for kind, domain, title, rank in rows.tuples()]
