"""Visits: one row per visit, maintained by PostgreSQL from the events themselves, read by analytics.

The ``sessions`` table becomes the one definition of a visit (Plausible's: attributes of the visit's first
event, entry page the first pageview's pathname, exit page the last's, duration from first to last event,
pageviews, events, interactive custom events for the bounce). A statement-level trigger on ``events`` folds
every inserted batch into it, whoever writes the events (the ingest service, imports, the benchmark's
generator, tests), in the same transaction:

- concurrent batches and several ingest processes: ``INSERT ... ON CONFLICT DO UPDATE`` takes the visit's
  row lock, in (site, visit) order so two batches cannot deadlock, and sees the other's committed row;
- late events (an earlier timestamp than the row's first event): the first event, the first pageview and the
  last pageview are each kept with their ``(timestamp, id)``, the order the raw engine's windows use, so a
  late event replaces them exactly when it comes first (or last);
- midnight: the ingest service keeps a running visit under the previous day's visitor id, so the visit stays
  one row.

Existing events are folded in once here.

The same trigger notes late events: an event whose local day the rollups already cover (an import, a clock
far behind) adds its (site, day) to ``rollup_stale``, and the rollup job rebuilds the days around it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ATTRIBUTES = (
    "visitor_id", "referrer", "referrer_source", "channel", "utm_source", "utm_medium", "utm_campaign",
    "utm_content", "utm_term", "device", "browser", "browser_version", "os", "os_version", "country",
)
"""Taken from the visit's first event."""

FOLD = """
WITH n AS (SELECT * FROM {source} WHERE session_id <> 0),
firsts AS (
    SELECT DISTINCT ON (site_id, session_id) site_id, session_id, timestamp AS started_at, id AS first_id, {attrs}
    FROM n ORDER BY site_id, session_id, timestamp, id
),
entries AS (
    SELECT DISTINCT ON (site_id, session_id) site_id, session_id, pathname, hostname, timestamp, id
    FROM n WHERE name = 'pageview' ORDER BY site_id, session_id, timestamp, id
),
exits AS (
    SELECT DISTINCT ON (site_id, session_id) site_id, session_id, pathname, hostname, timestamp, id
    FROM n WHERE name = 'pageview' ORDER BY site_id, session_id, timestamp DESC, id DESC
),
totals AS (
    SELECT site_id, session_id, max(timestamp) AS ended_at, count(*) FILTER (WHERE name = 'pageview') AS pageviews,
           count(*) AS events, count(*) FILTER (WHERE name <> 'pageview' AND interactive) AS interactive_events
    FROM n GROUP BY site_id, session_id
)
INSERT INTO sessions AS s (site_id, session_id, started_at, first_id, ended_at, entry_page, entry_hostname,
                           entry_at, entry_id, exit_page, exit_hostname, exit_at, exit_id, pageviews, events,
                           interactive_events, {attrs})
SELECT f.site_id, f.session_id, f.started_at, f.first_id, t.ended_at, coalesce(en.pathname, ''),
       coalesce(en.hostname, ''), en.timestamp, en.id, coalesce(ex.pathname, ''), coalesce(ex.hostname, ''),
       ex.timestamp, ex.id, t.pageviews, t.events, t.interactive_events, {f_attrs}
FROM firsts f JOIN totals t USING (site_id, session_id)
LEFT JOIN entries en USING (site_id, session_id) LEFT JOIN exits ex USING (site_id, session_id)
ORDER BY f.site_id, f.session_id
ON CONFLICT (site_id, session_id) DO UPDATE SET
    {first_attrs},
    started_at = least(s.started_at, excluded.started_at),
    first_id = CASE WHEN (excluded.started_at, excluded.first_id) < (s.started_at, s.first_id)
                    THEN excluded.first_id ELSE s.first_id END,
    ended_at = greatest(s.ended_at, excluded.ended_at),
    {entry_attrs},
    {exit_attrs},
    pageviews = s.pageviews + excluded.pageviews,
    events = s.events + excluded.events,
    interactive_events = s.interactive_events + excluded.interactive_events
"""


def fold_sql(source: str) -> str:
    """The statement folding the events of ``source`` (a table or transition table) into ``sessions``."""
    earlier = "(excluded.started_at, excluded.first_id) < (s.started_at, s.first_id)"
    entry = ("excluded.entry_at IS NOT NULL AND (s.entry_at IS NULL OR "
             "(excluded.entry_at, excluded.entry_id) < (s.entry_at, s.entry_id))")
    exit_ = ("excluded.exit_at IS NOT NULL AND (s.exit_at IS NULL OR "
             "(excluded.exit_at, excluded.exit_id) > (s.exit_at, s.exit_id))")
    return FOLD.format(
        source=source,
        attrs=", ".join(ATTRIBUTES),
        f_attrs=", ".join(f"f.{a}" for a in ATTRIBUTES),
        first_attrs=",\n    ".join(f"{a} = CASE WHEN {earlier} THEN excluded.{a} ELSE s.{a} END" for a in ATTRIBUTES),
        entry_attrs=",\n    ".join(f"{a} = CASE WHEN {entry} THEN excluded.{a} ELSE s.{a} END"
                                   for a in ("entry_page", "entry_hostname", "entry_at", "entry_id")),
        exit_attrs=",\n    ".join(f"{a} = CASE WHEN {exit_} THEN excluded.{a} ELSE s.{a} END"
                                  for a in ("exit_page", "exit_hostname", "exit_at", "exit_id")),
    )


STALE = """
INSERT INTO rollup_stale (site_id, day)
SELECT DISTINCT n.site_id, (n.timestamp AT TIME ZONE r.timezone)::date
FROM new_events n JOIN rollup_state r ON r.site_id = n.site_id
WHERE (n.timestamp AT TIME ZONE r.timezone)::date <= greatest(r.rolled_until, r.provisional_day)
ON CONFLICT DO NOTHING
"""


def upgrade() -> None:
    op.execute("DROP TABLE sessions")
    op.execute("""
        CREATE TABLE sessions (
            site_id bigint NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
            session_id bigint NOT NULL,
            visitor_id bigint NOT NULL,
            started_at timestamptz NOT NULL,
            first_id bigint NOT NULL,
            ended_at timestamptz NOT NULL,
            entry_page varchar(2000) NOT NULL,
            entry_hostname varchar(253) NOT NULL,
            entry_at timestamptz,
            entry_id bigint,
            exit_page varchar(2000) NOT NULL,
            exit_hostname varchar(253) NOT NULL,
            exit_at timestamptz,
            exit_id bigint,
            pageviews integer NOT NULL,
            events integer NOT NULL,
            interactive_events integer NOT NULL,
            referrer varchar(2000) NOT NULL,
            referrer_source varchar(120) NOT NULL,
            channel varchar(32) NOT NULL,
            utm_source varchar(300) NOT NULL,
            utm_medium varchar(300) NOT NULL,
            utm_campaign varchar(300) NOT NULL,
            utm_content varchar(300) NOT NULL,
            utm_term varchar(300) NOT NULL,
            device varchar(16) NOT NULL,
            browser varchar(80) NOT NULL,
            browser_version varchar(40) NOT NULL,
            os varchar(80) NOT NULL,
            os_version varchar(40) NOT NULL,
            country varchar(2) NOT NULL,
            PRIMARY KEY (site_id, session_id)
        )
    """)
    op.execute(fold_sql("events"))
    op.execute("CREATE INDEX sessions_site_start ON sessions (site_id, started_at)")
    op.execute("""
        CREATE TABLE rollup_stale (
            site_id bigint NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
            day date NOT NULL,
            noted_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (site_id, day)
        )
    """)
    op.execute(f"""
        CREATE FUNCTION beacon_fold_visits() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {fold_sql("new_events")};
            {STALE};
            RETURN NULL;
        END
        $$
    """)
    op.execute("""
        CREATE TRIGGER events_fold_visits AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
        FOR EACH STATEMENT EXECUTE FUNCTION beacon_fold_visits()
    """)
    op.execute("ANALYZE sessions")


def downgrade() -> None:
    op.execute("DROP TRIGGER events_fold_visits ON events")
    op.execute("DROP FUNCTION beacon_fold_visits()")
    op.execute("DROP TABLE rollup_stale")
    # The previous schema's visits table, rebuilt from the events as far as its columns go.
    op.execute("""
        ALTER TABLE sessions DROP COLUMN first_id, DROP COLUMN entry_hostname, DROP COLUMN entry_at,
            DROP COLUMN entry_id, DROP COLUMN exit_hostname, DROP COLUMN exit_id, DROP COLUMN utm_content,
            DROP COLUMN utm_term, DROP COLUMN browser_version, DROP COLUMN os_version
    """)
