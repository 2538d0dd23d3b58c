"""Integrations jobs: send the webhook and mail outboxes, purge the delivery log, run imports.

The outboxes are PostgreSQL rows; these messages only point at them. ``dispatch_webhooks`` runs every second
(the scheduler enqueues it), leases the due deliveries and sends one ``deliver_webhook`` message per lease, so
a message lost with a killed worker is replaced by a new lease once the old one expires.
"""

from __future__ import annotations

import dramatiq

from services.integrations import alerts, delivery, exports, facts, mail, reports
from services.integrations.imports import job as imports_job
from services.integrations.imports import store as imports_store
from services.integrations.imports.files import ImportRefused, imports_dir
from workers.context import context


@dramatiq.actor(queue_name="integrations", max_retries=0, time_limit=30_000, max_age=30_000)
def dispatch_webhooks() -> None:
    """Lease every due delivery and enqueue its attempt."""
    ctx = context()
    leased = delivery.claim_due(ctx.engine, ctx.settings.integrations)
    for delivery_id, token in leased:
        deliver_webhook.send(delivery_id, token)


@dramatiq.actor(queue_name="integrations", max_retries=0, time_limit=45_000)
def deliver_webhook(delivery_id: int, token: str) -> None:
    """One attempt of one leased delivery. Not retried by Dramatiq: the outbox's schedule decides retries.
    Safe to run twice: a token whose lease has passed to another worker does nothing."""
    ctx = context()
    delivery.deliver(ctx.engine, ctx.settings.integrations, delivery_id, token)


@dramatiq.actor(queue_name="integrations", max_retries=0, time_limit=120_000, max_age=60_000)
def send_emails() -> None:
    """Hand the mail outbox's due emails to the SMTP server."""
    ctx = context()
    mail.send_due(ctx.engine, ctx.settings.integrations)


@dramatiq.actor(queue_name="integrations", max_retries=3, time_limit=300_000)
def purge_webhook_log() -> None:
    """Delete finished deliveries older than the log's retention (30 days)."""
    ctx = context()
    delivery.purge_log(ctx.engine, ctx.settings.integrations)


@dramatiq.actor(queue_name="integrations", max_retries=0, time_limit=120_000, max_age=60_000)
def coalesce_goals() -> None:
    """Send each site's goal conversions since the last run as one ``goal.completed`` per endpoint (and the
    site's first event as ``site.first_event``); the scheduler runs it every ``goal_interval`` seconds."""
    ctx = context()
    facts.coalesce(ctx.engine, ctx.settings)


@dramatiq.actor(queue_name="integrations", max_retries=0, time_limit=600_000, max_age=3_600_000)
def send_reports() -> None:
    """Queue the weekly and monthly reports that are due (Monday / the 1st from 09:00, site time); hourly."""
    ctx = context()
    reports.send_reports(ctx.engine, ctx.settings)


@dramatiq.actor(queue_name="integrations", max_retries=0, time_limit=120_000, max_age=60_000)
def evaluate_alerts() -> None:
    """Evaluate the alert rules out of their cool-down; the scheduler runs it every minute."""
    ctx = context()
    alerts.evaluate(ctx.engine, ctx.settings)


@dramatiq.actor(queue_name="integrations", max_retries=0, time_limit=1_800_000, max_age=1_800_000)
def evaluate_anomaly_alerts() -> None:
    """The hourly pass of the ``anomaly`` rules: each due rule's last complete hour scored by the compute
    service, which keeps the detector state per site and metric; the scheduler runs it every hour."""
    ctx = context()
    alerts.evaluate_anomalies(ctx.engine, ctx.settings)


@dramatiq.actor(queue_name="integrations", max_retries=0, time_limit=30_000, max_age=30_000)
def dispatch_imports() -> None:
    """Send the job of every import that needs one (new, its message lost, or its worker killed)."""
    ctx = context()
    for import_id in imports_store.dispatch(ctx.engine, ctx.settings.imports):
        run_import.send(import_id)


@dramatiq.actor(queue_name="imports", max_retries=3, time_limit=6 * 3_600_000, throws=(ImportRefused,))
def run_import(import_id: int) -> None:
    """Run or resume one import from its cursor; safe to run twice (a second job finds it leased or done).
    A refusal fails the import with its reason and is not retried; other errors are, from the cursor."""
    ctx = context()
    imports_job.run_import(ctx.engine, ctx.settings.imports, import_id)


@dramatiq.actor(queue_name="integrations", max_retries=3, time_limit=300_000, max_age=3_600_000)
def purge_import_uploads() -> None:
    """Remove uploaded exports that no import points at any more (a day after they were written)."""
    ctx = context()
    imports_store.purge_orphans(ctx.engine, imports_dir(ctx.settings.paths.state_dir))


@dramatiq.actor(queue_name="integrations", max_retries=0, time_limit=30_000, max_age=30_000)
def dispatch_exports() -> None:
    """Send the job of every export job that needs one (new, its message lost, or its worker killed)."""
    ctx = context()
    for export_id in exports.dispatch(ctx.engine, ctx.settings.imports.lease):
        build_export.send(export_id)


@dramatiq.actor(queue_name="imports", max_retries=3, time_limit=3_600_000, throws=(exports.LeaseLost,))
def build_export(export_id: int) -> None:
    """Build one export's zip, mark it ready and email its link; safe to run twice (a second job finds it
    leased or done). A range the analytics service refuses fails the export; other errors are retried."""
    ctx = context()
    exports.build(ctx.engine, ctx.settings, export_id)


@dramatiq.actor(queue_name="integrations", max_retries=3, time_limit=300_000, max_age=3_600_000)
def purge_exports() -> None:
    """Remove the files of exports past their expiry (``BEACON_IMPORT_EXPORT_TTL``); hourly."""
    ctx = context()
    exports.purge_expired(ctx.engine)
