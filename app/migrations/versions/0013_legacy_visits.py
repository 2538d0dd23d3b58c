"""Every event belongs to a visit: events stored without a visit id get one, by Plausible's 30-minute rule.

Legacy events (``session_id = 0``: stored before visits had ids, or by a writer that does not set one) had no
row in the visits table, so the visits-table and join paths left them out while the raw engine counted all of
them as one visit. The rule from here on: **such an event belongs to its visitor's visit by Plausible's own
rule**, a visit lasting while the visitor's events come less than 30 minutes apart (the ingest service's
``session_timeout``), and gets that visit's id. Ids of these visits are negative (``legacy_visit_ids``), so they
never meet the ingest service's, which are positive.

- Existing legacy events are moved out and back in once here; re-inserting them fires the triggers below.
- A statement trigger ``events_legacy_visits`` (after ``events_fold_visits``, which skips them) takes the
  batch's legacy events out again, gives each the id of the visitor's legacy visit with an event within 30
  minutes or a new one (events of the batch itself grouped by the same 30-minute rule), and inserts them back,
  so that ``events_fold_visits`` folds them into ``sessions`` like every other event. A batch without legacy
  events costs one look at the transition table.

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY = """
CREATE FUNCTION beacon_legacy_visits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_events WHERE session_id = 0) THEN
        RETURN NULL;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS beacon_legacy_events (LIKE events) ON COMMIT DELETE ROWS;
    TRUNCATE beacon_legacy_events;
    WITH moved AS (
        DELETE FROM events e USING new_events n
        WHERE n.session_id = 0 AND e.session_id = 0 AND e.id = n.id AND e.timestamp = n.timestamp RETURNING e.*
    )
    INSERT INTO beacon_legacy_events SELECT * FROM moved;
    WITH o AS (
        SELECT l.id, l.timestamp, l.site_id, l.visitor_id,
               (SELECT x.session_id FROM events x
                WHERE x.site_id = l.site_id AND x.visitor_id = l.visitor_id AND x.session_id < 0
                  AND x.timestamp > l.timestamp - interval '30 minutes'
                  AND x.timestamp < l.timestamp + interval '30 minutes'
                ORDER BY abs(extract(epoch FROM x.timestamp - l.timestamp)), x.id LIMIT 1) AS joined,
               CASE WHEN l.timestamp - lag(l.timestamp) OVER v < interval '30 minutes' THEN 0 ELSE 1 END AS starts
        FROM beacon_legacy_events l
        WINDOW v AS (PARTITION BY l.site_id, l.visitor_id ORDER BY l.timestamp, l.id)
    ),
    k AS (SELECT o.*, sum(starts) OVER (PARTITION BY site_id, visitor_id ORDER BY timestamp, id) AS visit_no FROM o),
    g AS (SELECT site_id, visitor_id, visit_no, min(joined) AS joined FROM k GROUP BY site_id, visitor_id, visit_no),
    ids AS (SELECT site_id, visitor_id, visit_no, coalesce(joined, -nextval('legacy_visit_ids')) AS session_id
            FROM g)
    UPDATE beacon_legacy_events l SET session_id = ids.session_id
    FROM k JOIN ids USING (site_id, visitor_id, visit_no)
    WHERE l.id = k.id AND l.timestamp = k.timestamp;
    INSERT INTO events SELECT * FROM beacon_legacy_events;
    TRUNCATE beacon_legacy_events;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute("CREATE SEQUENCE legacy_visit_ids AS bigint")
    op.execute(LEGACY)
    op.execute("""
        CREATE TRIGGER events_legacy_visits AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
        FOR EACH STATEMENT EXECUTE FUNCTION beacon_legacy_visits()
    """)
    # Existing legacy events: out and back in, through the triggers.
    op.execute("CREATE TEMP TABLE beacon_legacy_backfill AS SELECT * FROM events WHERE session_id = 0")
    op.execute("DELETE FROM events WHERE session_id = 0")
    op.execute("INSERT INTO events SELECT * FROM beacon_legacy_backfill")
    op.execute("DROP TABLE beacon_legacy_backfill")
    op.execute("ANALYZE sessions")


def downgrade() -> None:
    op.execute("DROP TRIGGER events_legacy_visits ON events")
    op.execute("DROP FUNCTION beacon_legacy_visits()")
    op.execute("DROP SEQUENCE legacy_visit_ids")
