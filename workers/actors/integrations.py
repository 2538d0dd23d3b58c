"""Integrations jobs: send the webhook and mail outboxes, purge the delivery log, run imports.

The outboxes are PostgreSQL rows; these messages only point at them. ``dispatch_webhooks`` runs every second
(the scheduler enqueues it), leases the due deliveries and sends one ``deliver_webhook`` message per lease, so
a message lost with a killed worker is replaced by a new lease once the old one expires.
"""

from __future__ import annotations

from services.integrations import alerts, delivery, exports, facts, mail, reports
from services.integrations.imports import job as imports_job
from services.integrations.imports import store as imports_store
from services.integrations.imports.files import ImportRefused, imports_dir
from workers.actors.spec import PERMANENT, ActorSpec
from workers.context import WorkerContext


def dispatch_webhooks(ctx: WorkerContext) -> None:
    """Lease every due delivery and enqueue its attempt."""
    leased = delivery.claim_due(ctx.engine, ctx.settings.integrations)
    deliver = ctx.broker.get_actor("deliver_webhook")
    for delivery_id, token in leased:
        deliver.send(delivery_id, token)


def deliver_webhook(ctx: WorkerContext, delivery_id: int, token: str) -> None:
    """One attempt of one leased delivery. Not retried by Dramatiq: the outbox's schedule decides retries.
    Safe to run twice: a token whose lease has passed to another worker does nothing."""
    delivery.deliver(ctx.engine, ctx.settings.integrations, delivery_id, token)


def send_emails(ctx: WorkerContext) -> None:
    """Hand the mail outbox's due emails to the SMTP server."""
    mail.send_due(ctx.engine, ctx.settings.integrations)


def purge_webhook_log(ctx: WorkerContext) -> None:
    """Delete finished deliveries older than the log's retention (30 days)."""
    delivery.purge_log(ctx.engine, ctx.settings.integrations)


def coalesce_goals(ctx: WorkerContext) -> None:
    """Send each site's goal conversions since the last run as one ``goal.completed`` per endpoint (and the
    site's first event as ``site.first_event``); the scheduler runs it every ``goal_interval`` seconds."""
    facts.coalesce(ctx.engine, ctx.settings)


def send_reports(ctx: WorkerContext) -> None:
    """Queue the weekly and monthly reports that are due (Monday / the 1st from 09:00, site time); hourly."""
    reports.send_reports(ctx.engine, ctx.settings)


def evaluate_alerts(ctx: WorkerContext) -> None:
    """Evaluate the alert rules out of their cool-down; the scheduler runs it every minute."""
    alerts.evaluate(ctx.engine, ctx.settings)


def evaluate_anomaly_alerts(ctx: WorkerContext) -> None:
    """The hourly pass of the ``anomaly`` rules: each due rule's last complete hour scored by the compute
    service, which keeps the detector state per site and metric; the scheduler runs it every hour."""
    alerts.evaluate_anomalies(ctx.engine, ctx.settings)


def dispatch_imports(ctx: WorkerContext) -> None:
    """Send the job of every import that needs one (new, its message lost, or its worker killed)."""
    run = ctx.broker.get_actor("run_import")
    for import_id in imports_store.dispatch(ctx.engine, ctx.settings.imports):
        run.send(import_id)


def run_import(ctx: WorkerContext, import_id: int) -> None:
    """Run or resume one import from its cursor; safe to run twice (a second job finds it leased or done).
    A refusal fails the import with its reason and is not retried; other errors are, from the cursor."""
    imports_job.run_import(ctx.engine, ctx.settings.imports, import_id)


def purge_import_uploads(ctx: WorkerContext) -> None:
    """Remove uploaded exports that no import points at any more (a day after they were written)."""
    imports_store.purge_orphans(ctx.engine, imports_dir(ctx.settings.paths.state_dir))


def dispatch_exports(ctx: WorkerContext) -> None:
    """Send the job of every export job that needs one (new, its message lost, or its worker killed)."""
    build = ctx.broker.get_actor("build_export")
    for export_id in exports.dispatch(ctx.engine, ctx.settings.imports.lease):
        build.send(export_id)


def build_export(ctx: WorkerContext, export_id: int) -> None:
    """Build one export's zip, mark it ready and email its link; safe to run twice (a second job finds it
    leased or done). A range the analytics service refuses fails the export; other errors are retried."""
    exports.build(ctx.engine, ctx.settings, export_id)


def purge_exports(ctx: WorkerContext) -> None:
    """Remove the files of exports past their expiry (``BEACON_IMPORT_EXPORT_TTL``); hourly."""
    exports.purge_expired(ctx.engine)


# max_retries=0 where the outbox or the schedule retries by itself; max_age drops a periodic job that waited
# longer than its period (the next one is on its way).
_QUEUE = "integrations"
ACTORS = [
    ActorSpec(dispatch_webhooks, _QUEUE, max_retries=0, time_limit=30_000, options={"max_age": 30_000}),
    ActorSpec(deliver_webhook, _QUEUE, max_retries=0, time_limit=45_000),
    ActorSpec(send_emails, _QUEUE, max_retries=0, time_limit=120_000, options={"max_age": 60_000}),
    ActorSpec(purge_webhook_log, _QUEUE, max_retries=3, time_limit=300_000),
    ActorSpec(coalesce_goals, _QUEUE, max_retries=0, time_limit=120_000, options={"max_age": 60_000}),
    ActorSpec(send_reports, _QUEUE, max_retries=0, time_limit=600_000, options={"max_age": 3_600_000}),
    ActorSpec(evaluate_alerts, _QUEUE, max_retries=0, time_limit=120_000, options={"max_age": 60_000}),
    ActorSpec(evaluate_anomaly_alerts, _QUEUE, max_retries=0, time_limit=1_800_000, options={"max_age": 1_800_000}),
    ActorSpec(dispatch_imports, _QUEUE, max_retries=0, time_limit=30_000, options={"max_age": 30_000}),
    ActorSpec(run_import, "imports", max_retries=3, time_limit=6 * 3_600_000, throws=(*PERMANENT, ImportRefused)),
    ActorSpec(purge_import_uploads, _QUEUE, max_retries=3, time_limit=300_000, options={"max_age": 3_600_000}),
    ActorSpec(dispatch_exports, _QUEUE, max_retries=0, time_limit=30_000, options={"max_age": 30_000}),
    ActorSpec(build_export, "imports", max_retries=3, time_limit=3_600_000, throws=(*PERMANENT, exports.LeaseLost)),
    ActorSpec(purge_exports, _QUEUE, max_retries=3, time_limit=300_000, options={"max_age": 3_600_000}),
]
