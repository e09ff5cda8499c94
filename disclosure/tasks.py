"""Task-queue entry points (django-q2). Each is a thin wrapper over a "handle one unit"
function that tests call directly; arguments stay plain JSON.

``ensure_schedules`` (run after every ``migrate``) keeps four schedules, keyed by name:
``disclosure-sweep`` every minute (``python manage.py sweep`` runs the same code once),
``disclosure-hourly`` (housekeeping), ``disclosure-retention`` daily, and
``disclosure-digest`` daily at ``DAILY_DIGEST_HOUR`` when that is set, and
``disclosure-backup`` daily at ``BACKUP_HOUR`` unless that is -1.
"""

import logging
import time
from datetime import datetime, timedelta
from datetime import time as clock_time

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from disclosure import backup_targets, emails, incidents, pgp, ratelimits, rotation, securitytxt, sla, storage, webhooks
from disclosure.inbound import file as inbound_file
from disclosure.inbound import imap
from disclosure.inbound.models import InboundMail
from disclosure.models import OutboundEmail, Programme, Report

log = logging.getLogger(__name__)

SWEEP_SCHEDULE = "disclosure-sweep"
LAST_SWEEP_KEY = "disclosure:last-sweep"
WORKER_STARTED_KEY = "disclosure:worker-started"  # set by `manage.py worker` when its cluster starts
DIGEST_SCHEDULE = "disclosure-digest"
HOURLY_SCHEDULE = "disclosure-hourly"
DAILY_SCHEDULE = "disclosure-retention"
MAIL_SCHEDULE = "disclosure-mail"
BACKUP_SCHEDULE = "disclosure-backup"
EMAIL_BATCH = 200


def deliver_emails(email_ids: list[int]) -> int:
    """Send the outbox rows one transaction queued (an event's notifications); returns how
    many were attempted. Each row is delivered on its own: a failure is recorded on that
    row and retried by the sweep, and does not stop the others."""
    return sum(emails.deliver(email_id, timezone.now()) for email_id in email_ids)


def deliver_webhooks(delivery_ids: list[int]) -> int:
    """Deliver the webhook rows one event queued; each on its own, as ``deliver_emails``."""
    return sum(webhooks.deliver(pk, timezone.now()) for pk in delivery_ids)


def deliver_email(email_id: int) -> bool:
    """One row (tasks queued before deliveries were batched still name this)."""
    return bool(deliver_emails([email_id]))


def retry_due_emails(now, limit: int = EMAIL_BATCH) -> int:
    """Attempt every outbox row whose next attempt is due; returns how many were tried.

    Stops after half the task timeout, so a slow mail provider cannot get the sweep killed;
    what is left is picked up by the next sweep a minute later.
    """
    due = list(
        OutboundEmail.objects.filter(state=OutboundEmail.State.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
    budget_ends = time.monotonic() + settings.Q_CLUSTER["timeout"] / 2
    tried = 0
    for position, pk in enumerate(due):
        if time.monotonic() > budget_ends:
            log.warning("Sweep time budget used up with %s email(s) still due", len(due) - position)
            break
        try:
            tried += emails.deliver(pk, now)
        except Exception:  # one bad row must not stop the others
            log.exception("Delivering email %s failed unexpectedly", pk)
    return tried


def raise_due_sla_alerts(now, limit: int = 1000) -> int:
    """Record every SLA warning and escalation that has come due; returns how many.

    Reads only reports whose stored next-alert time has passed (a partial index), so its
    cost grows with the number of reports due, not with the total. Each report is handled
    on its own: one that fails is logged and retried on the next sweep.
    """
    raised = 0
    for milestone in ("ack", "assess"):
        due = list(
            Report.objects.filter(**{f"{milestone}_next_alert_at__lte": now})
            .order_by(f"{milestone}_next_alert_at").values_list("pk", flat=True)[:limit]
        )
        for pk in due:
            try:
                raised += Report(pk=pk).raise_sla_alert(milestone, now) is not None
            except Exception:
                log.exception("SLA alert for report %s (%s) failed", pk, milestone)
    return raised


def sweep(now=None) -> dict:
    """The scheduled pass: record due SLA and breach alerts (which queue their emails and
    webhooks), resend due email and webhooks, file inbound mail whose filing task was lost,
    delete stored files whose deletion failed."""
    now = now or timezone.now()
    result = {"sla_alerts": raise_due_sla_alerts(now), "breach_alerts": incidents.raise_due_breach_alerts(now),
              "emails": retry_due_emails(now), "webhooks": webhooks.retry_due_deliveries(now),
              "inbound_mail": inbound_file.file_pending(now)}
    result["files_deleted"] = storage.delete_due(now)  # stored files whose deletion failed before
    cache.set(LAST_SWEEP_KEY, now.isoformat(), timeout=None)
    return result


def housekeeping(now=None) -> dict:
    """The hourly pass: renew security.txt, warn the team before the key expires, delete
    the rate-limit counter table's rows whose time is up, record the credentials in use
    and remind the team (weekly) of those past their rotation age."""
    now = now or timezone.now()
    result = {"securitytxt_renewed": securitytxt.renew_if_needed(now), "key_alert": key_expiry_alert(now),
              "counters_deleted": ratelimits.delete_expired_counters(now)}
    result["credentials_seen"] = rotation.record(now)
    result["rotation_alert"] = rotation.send_reminder(now)
    return result


def key_expiry_alert(now) -> bool:
    """Email the team (at most weekly) while the team key expires soon (``pgp.KEY_EXPIRY_WARNING``)."""
    key = pgp.team_key()
    if key is None or not key.expires_soon(now):
        return False
    with transaction.atomic():
        if not Programme.claim_week("key_alert_sent_at", now):
            return False
        emails.key_expiry(key, now)
    return True


def purge_expired(now=None, *, limit: int = 500) -> int:
    """The daily retention pass: purge each finished report past the retention period, and
    the Inbound mail log's rows of no report (ignored mail) past it too."""
    now = now or timezone.now()
    if settings.RETENTION_DAYS == 0:
        return 0
    purged = 0
    for pk in Report.objects.purgeable(now).values_list("pk", flat=True)[:limit]:
        try:
            purged += bool(Report(pk=pk).purge(now=now))
        except Exception:
            log.exception("Purging report %s failed", pk)
    with transaction.atomic():  # their raw messages are deleted once this commits
        InboundMail.objects.filter(pk__in=list(InboundMail.objects.purgeable(now).values_list("pk", flat=True)[:limit])
                                   ).delete()
    return purged


def poll_mail() -> dict:
    """One pass over the IMAP mailbox (``python manage.py fetch_mail`` runs the same)."""
    return imap.poll()


def file_inbound_mail(inbound_id: int) -> str:
    """File one message a webhook recorded; returns its state."""
    return inbound_file.file_safely(inbound_id).state


def send_daily_digest(now=None) -> bool:
    """Queue the team's daily digest; False when today's was already queued."""
    return emails.daily_digest(now or timezone.now()) is not None


def run_backup(now=None) -> dict:
    """The daily backup: one archive where ``BACKUP_TARGET`` says (``BACKUP_DIR`` or the
    bucket), then archives there past ``BACKUP_RETENTION_DAYS`` deleted (only after a backup
    succeeded). A failure raises, so it is listed under Failed tasks; /healthz reports the
    backup's age."""
    now = now or timezone.now()
    location = backup_targets.make_backup(now)
    return {"archive": location, "deleted": backup_targets.delete_old(now)}


def _daily_at(name: str, func: str, hour: int) -> None:
    """A daily schedule at ``hour`` (programme time); -1 removes it."""
    if hour < 0:
        Schedule.objects.filter(name=name).delete()
        return
    now = timezone.now()
    first = datetime.combine(sla.local_date(now), clock_time(hour % 24), tzinfo=sla.programme_zone())
    if first <= now:
        first += timedelta(days=1)
    schedule, created = Schedule.objects.get_or_create(
        name=name, defaults={"func": func, "schedule_type": Schedule.DAILY, "repeats": -1, "next_run": first},
    )
    if not created and schedule.next_run.astimezone(sla.programme_zone()).hour != hour % 24:
        schedule.next_run = first
        schedule.save(update_fields=["next_run"])


def ensure_schedules(**kwargs) -> None:
    """Create or update the schedules, keyed by name (safe to run on every migrate).

    ``disclosure-sweep`` runs every minute. ``disclosure-digest`` runs daily at
    ``DAILY_DIGEST_HOUR`` (programme time) when that is set, and is removed otherwise.
    """
    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE,
        defaults={"func": "disclosure.tasks.sweep", "schedule_type": Schedule.MINUTES, "minutes": 1,
                  "repeats": -1},
    )
    Schedule.objects.update_or_create(
        name=HOURLY_SCHEDULE,
        defaults={"func": "disclosure.tasks.housekeeping", "schedule_type": Schedule.HOURLY, "repeats": -1},
    )
    Schedule.objects.update_or_create(
        name=DAILY_SCHEDULE,
        defaults={"func": "disclosure.tasks.purge_expired", "schedule_type": Schedule.DAILY, "repeats": -1},
    )
    if settings.INBOUND_IMAP_URL:
        Schedule.objects.update_or_create(
            name=MAIL_SCHEDULE,
            defaults={"func": "disclosure.tasks.poll_mail", "schedule_type": Schedule.MINUTES, "minutes": 1,
                      "repeats": -1},
        )
    else:
        Schedule.objects.filter(name=MAIL_SCHEDULE).delete()
    _daily_at(DIGEST_SCHEDULE, "disclosure.tasks.send_daily_digest", settings.DAILY_DIGEST_HOUR)
    # A backup is never written unencrypted: without a team key there is no schedule to fail daily.
    _daily_at(BACKUP_SCHEDULE, "disclosure.tasks.run_backup", settings.BACKUP_HOUR if pgp.team_fingerprint() else -1)
