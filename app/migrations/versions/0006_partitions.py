"""Event partitions: a month's partition takes over the rows the default partition holds for that month.

Before this, ``CREATE TABLE ... PARTITION OF events`` failed for any month of which the default partition
already held rows (PostgreSQL refuses a partition that would make rows of the default one misplaced), so one
stray row — an event stored while the scheduler was down for months, a clock far off — blocked that month's
partition for good. ``beacon_create_event_partition(month)`` now creates the table detached, moves the
month's rows out of the default partition into it and attaches it, all in the caller's transaction, under
the same advisory lock. ``beacon_ensure_event_partitions(months_ahead)`` also gives every month found in the
default partition its own partition, so the default one stays empty in normal operation.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATE_PARTITION = """
CREATE OR REPLACE FUNCTION beacon_create_event_partition(month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lower_bound timestamptz := date_trunc('month', month)::timestamp AT TIME ZONE 'UTC';
    upper_bound timestamptz := (date_trunc('month', month) + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    part text := format('events_%s', to_char(date_trunc('month', month), 'YYYY_MM'));
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('beacon.event_partitions'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    -- The bounds as a CHECK constraint let ATTACH skip scanning the new table.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (timestamp >= %L AND timestamp < %L)',
                   part, part || '_bounds', lower_bound, upper_bound);
    EXECUTE format('WITH moved AS (DELETE FROM events_default WHERE timestamp >= %L AND timestamp < %L '
                   'RETURNING *) INSERT INTO %I SELECT * FROM moved', lower_bound, upper_bound, part);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lower_bound, upper_bound);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_bounds');
    RETURN true;
END
$$;
"""

ENSURE_PARTITIONS = """
CREATE OR REPLACE FUNCTION beacon_ensure_event_partitions(months_ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    stray date;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('beacon.event_partitions'));
    FOR i IN -1..months_ahead LOOP
        IF beacon_create_event_partition((month_start + make_interval(months => i))::date) THEN
            created := created + 1;
        END IF;
    END LOOP;
    FOR stray IN SELECT DISTINCT date_trunc('month', timestamp AT TIME ZONE 'UTC')::date FROM events_default LOOP
        IF beacon_create_event_partition(stray) THEN
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;
"""

# 0002's version, restored on downgrade.
ENSURE_PARTITIONS_0002 = """
CREATE OR REPLACE FUNCTION beacon_ensure_event_partitions(months_ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    lower_bound date;
    part text;
    created integer := 0;
BEGIN
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
    op.execute(CREATE_PARTITION)
    op.execute(ENSURE_PARTITIONS)
    op.execute("SELECT beacon_ensure_event_partitions(3)")


def downgrade() -> None:
    op.execute(ENSURE_PARTITIONS_0002)
    op.execute("DROP FUNCTION beacon_create_event_partition(date)")
