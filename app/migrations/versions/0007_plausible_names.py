"""Stored events and visits take Plausible's names, channels, sources, referrers and decoded paths.

Ingest now stores what Plausible stores (issue "Plausible fidelity"); rows stored before keep agreeing with
new ones only if they are rewritten the same way:

- ``pathname`` (events), ``entry_page``/``exit_page`` (sessions): percent-decoded, path and hash-route
  fragment apart, trailing white space trimmed; a value whose bytes are not UTF-8 or that would hold a NUL
  stays as it was (as ingest does);
- ``referrer``, ``referrer_source``, ``channel`` (events, sessions): recomputed from the stored referrer URL
  and UTM tags by ingest's own attribution (``services.ingest.enrich.attribution``): the tag wins over the
  referrer, sources take the referrer list's spelling, localhost referrers are no source, channels get GA4's
  names ("Organic Search", "Direct", ...), the referrer is host + path. Click ids (``gclid``) were never
  stored, so a Google visit that had one stays "Organic Search";
- ``browser`` (events, sessions): ua-parser families renamed as Plausible reports them ("Mobile Safari" ->
  "Safari", webviews and in-app browsers -> "Mobile App", the in-app ones without ``browser_version``);
- ``os``: "Mac OS X" -> "Mac", "Linux" -> "GNU/Linux", "iOS" on a tablet -> "iPadOS";
- ``device``: "desktop"/"mobile"/"tablet" -> "Desktop"/"Mobile"/"Tablet", "other" -> "" (not set).

Rollups (``rollup_spans``, ``rollup_days``, ``rollup_state``) are emptied: the rollup job rebuilds every
site's from its oldest event. Downgrade maps OS, device and channel names back (several new channels fold
into one old one); browser names, sources, referrers and decoded paths stay as they are.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# The one definition of attribution and of the names is ingest's; a copy here would drift from it.
from services.ingest.enrich import APP_FAMILIES, BROWSER_NAMES, OS_NAMES, attribution

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECODE = r"""
CREATE OR REPLACE FUNCTION pg_temp.beacon_percent_decode(input text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    raw bytea := '';
    i integer := 1;
    n integer := length(input);
    c text;
BEGIN
    IF input IS NULL OR position('%' in input) = 0 THEN
        RETURN input;
    END IF;
    WHILE i <= n LOOP
        c := substr(input, i, 1);
        IF c = '%' AND substr(input, i + 1, 2) ~ '^[0-9A-Fa-f]{2}$' THEN
            raw := raw || decode(substr(input, i + 1, 2), 'hex');
            i := i + 3;
        ELSE
            raw := raw || convert_to(c, 'UTF8');
            i := i + 1;
        END IF;
    END LOOP;
    IF position('\x00'::bytea in raw) > 0 THEN
        RETURN input;
    END IF;
    RETURN convert_from(raw, 'UTF8');
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character OR invalid_parameter_value THEN
    RETURN input;
END
$$;
CREATE OR REPLACE FUNCTION pg_temp.beacon_decode_page(page text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT left(CASE WHEN position('#' in page) > 0
        THEN regexp_replace(pg_temp.beacon_percent_decode(split_part(page, '#', 1)), '\s+$', '') || '#'
             || pg_temp.beacon_percent_decode(substr(page, position('#' in page) + 1))
        ELSE regexp_replace(pg_temp.beacon_percent_decode(page), '\s+$', '') END, 2000)
$$;
"""

DEVICES = {"desktop": "Desktop", "mobile": "Mobile", "tablet": "Tablet", "other": ""}
OLD_CHANNELS = {"Organic Search": "search", "Organic Social": "social", "Email": "email", "Direct": "direct",
                "Paid Search": "paid", "Paid Social": "paid", "Paid Video": "paid", "Paid Shopping": "paid",
                "Paid Other": "paid", "Display": "paid"}


def _values(pairs: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A VALUES list of (old, new) and its bind parameters."""
    rows = ", ".join(f"(:o{i}, :n{i})" for i in range(len(pairs)))
    params: dict[str, str] = {}
    for i, (old, new) in enumerate(pairs.items()):
        params[f"o{i}"], params[f"n{i}"] = old, new
    return rows, params


def _rename(table: str, column: str, pairs: dict[str, str]) -> None:
    if not pairs:
        return
    rows, params = _values(pairs)
    op.get_bind().execute(sa.text(
        f"UPDATE {table} t SET {column} = m.new FROM (VALUES {rows}) AS m(old, new) "  # noqa: S608 - constants
        f"WHERE t.{column} = m.old"), params)


def _attribution(table: str) -> None:
    """Recompute referrer, source and channel of every distinct (referrer, tags) combination of ``table``."""
    bind = op.get_bind()
    combos = bind.execute(sa.text(
        f"SELECT DISTINCT referrer, referrer_source, channel, utm_source, utm_medium, utm_campaign "  # noqa: S608
        f"FROM {table}")).all()
    bind.execute(sa.text("CREATE TEMPORARY TABLE beacon_attribution (referrer text, referrer_source text, "
                         "channel text, utm_source text, utm_medium text, utm_campaign text, "
                         "new_referrer text, new_source text, new_channel text) ON COMMIT DROP"))
    rows = []
    for referrer, source, channel, utm_source, utm_medium, utm_campaign in combos:
        # Old rows hold the full referrer URL (or "" for internal and direct visits); the site's own host was
        # already removed at ingest, so no hostname is needed to tell internal links apart.
        new = attribution(referrer, "", utm_source, utm_medium, utm_campaign)
        if new != (referrer, source, channel):
            rows.append({"r": referrer, "s": source, "c": channel, "us": utm_source, "um": utm_medium,
                         "uc": utm_campaign, "nr": new[0], "ns": new[1], "nc": new[2]})
    if rows:
        bind.execute(sa.text("INSERT INTO beacon_attribution VALUES (:r, :s, :c, :us, :um, :uc, :nr, :ns, :nc)"),
                     rows)
        bind.execute(sa.text(
            f"UPDATE {table} t SET referrer = m.new_referrer, referrer_source = m.new_source, "  # noqa: S608
            "channel = m.new_channel FROM beacon_attribution m WHERE t.referrer = m.referrer "
            "AND t.referrer_source = m.referrer_source AND t.channel = m.channel AND t.utm_source = m.utm_source "
            "AND t.utm_medium = m.utm_medium AND t.utm_campaign = m.utm_campaign"))
    bind.execute(sa.text("DROP TABLE beacon_attribution"))


def _names(table: str) -> None:
    # iPads first: their OS is still "iOS" and their device still "tablet" here.
    op.execute(f"UPDATE {table} SET os = 'iPadOS' WHERE os = 'iOS' AND device = 'tablet'")  # noqa: S608 - constant
    if table == "events":  # in-app browsers have no version in Plausible (its "mobile app" clients)
        op.get_bind().execute(sa.text("UPDATE events SET browser_version = '' WHERE browser = ANY(:apps)"),
                              {"apps": sorted(APP_FAMILIES)})
    _rename(table, "browser", BROWSER_NAMES)
    _rename(table, "os", OS_NAMES)
    _rename(table, "device", DEVICES)


def upgrade() -> None:
    op.execute(DECODE)
    op.execute("UPDATE events SET pathname = pg_temp.beacon_decode_page(pathname) WHERE pathname LIKE '%\\%%'")
    op.execute("UPDATE sessions SET entry_page = pg_temp.beacon_decode_page(entry_page) "
               "WHERE entry_page LIKE '%\\%%'")
    op.execute("UPDATE sessions SET exit_page = pg_temp.beacon_decode_page(exit_page) WHERE exit_page LIKE '%\\%%'")
    for table in ("events", "sessions"):
        _attribution(table)
        _names(table)
    for table in ("rollup_spans", "rollup_days", "rollup_state"):
        op.execute(f"DELETE FROM {table}")  # noqa: S608 - a constant


def downgrade() -> None:
    for table in ("events", "sessions"):
        _rename(table, "device", {new: old for old, new in DEVICES.items() if new})
        _rename(table, "os", {"Mac": "Mac OS X", "GNU/Linux": "Linux", "iPadOS": "iOS"})
        _rename(table, "channel", {**OLD_CHANNELS, **{name: "referral" for name in (
            "Referral", "Organic Video", "Organic Shopping", "Affiliates", "Audio", "SMS",
            "Mobile Push Notifications", "Cross-network")}})
    for table in ("rollup_spans", "rollup_days", "rollup_state"):
        op.execute(f"DELETE FROM {table}")  # noqa: S608 - a constant
