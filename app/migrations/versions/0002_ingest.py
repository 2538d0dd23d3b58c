"""Ingest: events partitioned by month with enrichment columns, sessions, per-site exclusions.

``events`` becomes a table partitioned by range of ``timestamp`` (one partition per calendar month in UTC,
plus a default partition so that an event with an unexpected time is stored rather than refused). Its
primary key becomes ``(id, timestamp)`` because a partitioned table's unique keys must contain the
partition key; ``id`` keeps its sequence, so ``count(e.id)`` and ordering by id still work.

``beacon_ensure_event_partitions(months_ahead)`` creates the missing monthly partitions from the current
month on; the migration calls it and the scheduler calls it daily (``ingest.ensure_partitions``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENSURE_PARTITIONS = """
CREATE OR REPLACE FUNCTION beacon_ensure_event_partitions(months_ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    lower_bound date;
    part text;
    created integer := 0;
BEGIN
    -- One creator at a time (scheduler job and migration may race).
    PERFORM pg_advisory_xact_lock(hashtext('beacon.event_partitions'));
    FOR i IN -1..months_ahead LOOP
        lower_bound := (month_start + make_interval(months => i))::date;
        part := format('events_%s', to_char(lower_bound, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                part, lower_bound::timestamp AT TIME ZONE 'UTC',
                (lower_bound + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;
"""


def upgrade() -> None:
    op.execute("ALTER TABLE events RENAME TO events_0001")
    op.execute("ALTER INDEX events_site_time RENAME TO events_0001_site_time")
    # The identity's sequence is named events_id_seq too: free the name (ids are carried over below).
    op.execute("ALTER TABLE events_0001 ALTER COLUMN id DROP IDENTITY")
    op.execute("CREATE SEQUENCE events_id_seq AS bigint")
    op.execute("""
        CREATE TABLE events (
            id bigint NOT NULL DEFAULT nextval('events_id_seq'),
            site_id bigint NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
            timestamp timestamptz NOT NULL,
            name varchar(120) NOT NULL,
            visitor_id bigint NOT NULL,
            session_id bigint NOT NULL DEFAULT 0,
            hostname varchar(253) NOT NULL,
            pathname varchar(2000) NOT NULL,
            referrer varchar(2000) NOT NULL DEFAULT '',
            referrer_source varchar(120) NOT NULL DEFAULT '',
            channel varchar(32) NOT NULL DEFAULT '',
            utm_source varchar(300) NOT NULL DEFAULT '',
            utm_medium varchar(300) NOT NULL DEFAULT '',
            utm_campaign varchar(300) NOT NULL DEFAULT '',
            utm_term varchar(300) NOT NULL DEFAULT '',
            utm_content varchar(300) NOT NULL DEFAULT '',
            browser varchar(80) NOT NULL DEFAULT '',
            browser_version varchar(40) NOT NULL DEFAULT '',
            os varchar(80) NOT NULL DEFAULT '',
            os_version varchar(40) NOT NULL DEFAULT '',
            device varchar(16) NOT NULL DEFAULT '',
            country varchar(2) NOT NULL DEFAULT '',
            interactive boolean NOT NULL DEFAULT true,
            revenue_amount numeric(18, 4),
            revenue_currency char(3),
            props jsonb NOT NULL DEFAULT '{}',
            PRIMARY KEY (id, timestamp)
        ) PARTITION BY RANGE (timestamp)
    """)
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    op.execute("CREATE INDEX events_site_time ON events (site_id, timestamp)")
    op.execute("CREATE INDEX events_site_session ON events (site_id, session_id)")
    op.execute(ENSURE_PARTITIONS)
    op.execute("SELECT beacon_ensure_event_partitions(3)")
    # Keep existing rows: months before the first partition land in the default partition.
    op.execute("""
        INSERT INTO events (id, site_id, timestamp, name, visitor_id, hostname, pathname, referrer, props)
        SELECT id, site_id, timestamp, name, visitor_id, hostname, pathname, referrer, props FROM events_0001
    """)
    op.execute("SELECT setval('events_id_seq', greatest((SELECT max(id) FROM events_0001), 1))")
    op.execute("DROP TABLE events_0001")

    op.execute("""
        CREATE TABLE sessions (
            site_id bigint NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
            session_id bigint NOT NULL,
            visitor_id bigint NOT NULL,
            started_at timestamptz NOT NULL,
            ended_at timestamptz NOT NULL,
            entry_page varchar(2000) NOT NULL,
            exit_page varchar(2000) NOT NULL,
            exit_at timestamptz,
            pageviews integer NOT NULL DEFAULT 0,
            events integer NOT NULL DEFAULT 0,
            interactive_events integer NOT NULL DEFAULT 0,
            referrer varchar(2000) NOT NULL DEFAULT '',
            referrer_source varchar(120) NOT NULL DEFAULT '',
            channel varchar(32) NOT NULL DEFAULT '',
            utm_source varchar(300) NOT NULL DEFAULT '',
            utm_medium varchar(300) NOT NULL DEFAULT '',
            utm_campaign varchar(300) NOT NULL DEFAULT '',
            browser varchar(80) NOT NULL DEFAULT '',
            os varchar(80) NOT NULL DEFAULT '',
            device varchar(16) NOT NULL DEFAULT '',
            country varchar(2) NOT NULL DEFAULT '',
            PRIMARY KEY (site_id, session_id)
        )
    """)
    op.execute("CREATE INDEX sessions_site_start ON sessions (site_id, started_at)")

    op.execute("""
        CREATE TABLE site_exclusions (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            site_id bigint NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
            kind varchar(8) NOT NULL CHECK (kind IN ('ip', 'path')),
            pattern varchar(500) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX site_exclusions_site ON site_exclusions (site_id)")
    op.execute("CREATE INDEX salts_created ON salts (created_at)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS salts_created")
    op.execute("DROP TABLE site_exclusions")
    op.execute("DROP TABLE sessions")
    op.execute("ALTER TABLE events RENAME TO events_0002")
    op.execute("ALTER INDEX events_site_time RENAME TO events_0002_site_time")
    op.execute("""
        CREATE TABLE events (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            site_id bigint NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
            timestamp timestamptz NOT NULL,
            name varchar(120) NOT NULL,
            visitor_id bigint NOT NULL,
            hostname varchar(253) NOT NULL,
            pathname varchar(2000) NOT NULL,
            referrer varchar(2000) NOT NULL DEFAULT '',
            props jsonb NOT NULL DEFAULT '{}'
        )
    """)
    op.execute("""
        INSERT INTO events (id, site_id, timestamp, name, visitor_id, hostname, pathname, referrer, props)
        SELECT id, site_id, timestamp, name, visitor_id, hostname, pathname, referrer, props FROM events_0002
    """)
    op.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), greatest((SELECT max(id) FROM events), 1))")
    op.execute("DROP TABLE events_0002")
    op.execute("DROP FUNCTION beacon_ensure_event_partitions(integer)")
    op.execute("CREATE INDEX events_site_time ON events (site_id, timestamp)")
