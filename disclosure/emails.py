"""Every email the portal sends: one function per kind, one builder, one delivery function.

``notify(event)`` is called in the transaction that records an event and decides which
messages the event calls for. Each becomes an ``OutboundEmail`` row (subject, text and
HTML from ``templates/emails/<kind>-subject.txt``, ``<kind>.txt`` and ``<kind>.html``),
and the event's rows go to the task queue as one task once the transaction commits.
``deliver()``, in the worker, sends one row through the configured mailer
(``MAILERS["default"]``) and records the outcome. A few kinds are written by the worker
rather than in the request (``WRITTEN_WHEN_SENT``).

Emails to a reporter carry their own status link, minted at send time: the rendered body
holds a placeholder, so no usable token is ever stored.
"""

import functools
import logging
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.tasks import async_task

from disclosure import incidents, pgp, sla, webhooks
from disclosure.inbound import tags
from disclosure.metrics import sla_metrics
from disclosure.models import SLA_ESCALATIONS, SLA_WARNINGS, Event, OutboundEmail, Report, SlaState, StatusLink
from disclosure.pgp import mime

log = logging.getLogger(__name__)


def _domain() -> str:
    return urlsplit(settings.SITE_URL).hostname or "localhost"


def thread_id(report) -> str:
    """The Message-ID every email about a report refers to, so clients thread them."""
    return f"<report.{report.tracking_id.lower()}.{report.pk}@{_domain()}>"


# Emails that say only what was fixed when their event happened (the report as received,
# the reporter's own message) are written by the worker when it sends them, which keeps a
# submission to a few inserts. The others report a decision and the state it left, so they
# are written when the decision is recorded.
WRITTEN_WHEN_SENT = {OutboundEmail.Kind.RECEIPT, OutboundEmail.Kind.TEAM_NEW_REPORT,
                     OutboundEmail.Kind.TEAM_REPORTER_MESSAGE}


def _queue(kind: str, event: Event, to: str, *, status_link=False) -> OutboundEmail:
    """One message about an event's report, for the outbox (``notify`` saves them)."""
    report = event.report
    email = OutboundEmail(kind=kind, report=report, event=event, to=to,
                          message_id=f"<{uuid.uuid4().hex}.{report.tracking_id.lower()}@{_domain()}>",
                          references=thread_id(report), needs_status_link=status_link)
    if kind not in WRITTEN_WHEN_SENT:
        _render(email, _context(email), event.created_at)
    return email


def _context(email: OutboundEmail) -> dict:
    """What the templates of an event's email see: the report, the event, and what the kind adds."""
    event, report = email.event, email.report
    context = {"report": report, "event": event}
    if email.kind.startswith("team-"):
        context["admin_url"] = admin_url(report)
    if email.kind == OutboundEmail.Kind.TEAM_REPORTER_MESSAGE:
        context["message"] = event.message
    if email.kind == OutboundEmail.Kind.TEAM_SLA_ALERT:
        ack = event.kind in (Event.Kind.ACK_WARNING, Event.Kind.ACK_ESCALATION)
        context.update({
            "escalation": event.kind in SLA_ESCALATIONS,
            "milestone": "acknowledgement" if ack else "initial assessment",
            "due": datetime.fromisoformat(event.data["due"]),
            "warn_days": settings.SLA_WARN_BUSINESS_DAYS,
        })
    if email.kind == OutboundEmail.Kind.TEAM_BREACH_ALERT:
        clock = event.data["clock"]
        context.update({
            "escalation": event.kind == Event.Kind.BREACH_ESCALATION, "clock": clock,
            "clock_name": incidents.CLOCK_NAMES[clock], "who": incidents.CLOCK_WHO[clock],
            "hours": incidents.clock_hours(clock), "due": datetime.fromisoformat(event.data["due"]),
            "hours_left": event.data.get("hours_left"),
        })
    if email.kind == OutboundEmail.Kind.TEAM_BREACH_RECORDED:
        context.update({"clocks": [(incidents.CLOCK_NAMES[clock], incidents.CLOCK_WHO[clock],
                                    incidents.clock_hours(clock), datetime.fromisoformat(event.data[f"{clock}_due"]))
                                   for clock in incidents.CLOCKS],
                        "aware_at": datetime.fromisoformat(event.data["aware_at"])})
    return context


def _render(email: OutboundEmail, context: dict, now) -> None:
    """Render ``emails/<kind>-subject.txt``, ``<kind>.txt`` and ``<kind>.html`` into the row."""
    context = {
        "site_url": settings.SITE_URL,
        "organisation": settings.ORGANISATION_NAME,
        "status_url": OutboundEmail.STATUS_LINK_MARK,
        "sla_acknowledge_days": settings.SLA_ACKNOWLEDGE_DAYS,
        "sla_assess_days": settings.SLA_ASSESS_DAYS,
        "team_email": settings.SECURITY_TEAM_EMAIL,
        **context,
    }
    email.subject = " ".join(render_to_string(f"emails/{email.kind}-subject.txt", context).split())[:300]
    email.body_text = render_to_string(f"emails/{email.kind}.txt", context)
    email.body_html = render_to_string(f"emails/{email.kind}.html", context)
    email.rendered_at = now


def _put(kind, to, context, *, message_id, now):
    """An email that is not about one event (the digest, key expiry): written at once."""
    email = OutboundEmail(kind=kind, to=to, message_id=message_id)
    _render(email, context, now)
    return _save(email)


def _save(email: OutboundEmail):
    """Insert the row; one that already exists (same event, kind and recipient, or same
    Message-ID) is not queued twice."""
    try:
        with transaction.atomic():
            email.save()
    except IntegrityError:
        log.info("%s to %s already queued (%s)", email.kind, email.to, email.message_id)
        return None
    return email


def _save_all(emails: list[OutboundEmail]) -> list:
    """Insert rows in one statement; if one already exists, one by one (see ``_save``)."""
    try:
        with transaction.atomic():
            return OutboundEmail.objects.bulk_create(emails)
    except IntegrityError:
        for email in emails:
            email.pk = None
        return [_save(email) for email in emails]


def send_after_commit(emails: list) -> list:
    """Hand the saved outbox rows to the task queue, as one task, once the transaction
    commits.

    With the database as the broker (no ``REDIS_URL``) the task row is written in the same
    transaction as the emails, so both commit or neither does, at the cost of one insert.
    A Redis broker is told after the commit, ``robust``ly: a broker that is down must not
    turn a saved report into an error page; the sweep delivers what was not enqueued.
    """
    ids = [email.pk for email in emails if email is not None]
    if ids:
        if _broker_is_this_database():
            enqueue_delivery(ids)
        else:
            transaction.on_commit(lambda: enqueue_delivery(ids), robust=True)
    return [email for email in emails if email is not None]


def _broker_is_this_database() -> bool:
    return bool(Conf.ORM) and not Conf.SYNC and transaction.get_connection(Conf.ORM).in_atomic_block


@functools.cache
def _broker():
    """One broker (and so one Redis connection pool) per process, not one per task."""
    return get_broker()


def enqueue_delivery(email_ids: list[int]) -> None:
    async_task("disclosure.tasks.deliver_emails", email_ids, task_name=f"deliver-emails-{email_ids[0]}",
               group="email", broker=_broker())


# --- One function per kind ------------------------------------------------------------
def receipt(event):
    return _queue("receipt", event, event.report.reporter_email, status_link=True)


def new_report_to_team(event):
    return _queue("team-new-report", event, settings.SECURITY_TEAM_EMAIL)


def reporter_replied_to_team(event):
    return _queue("team-reporter-message", event, settings.SECURITY_TEAM_EMAIL)


def admin_url(report) -> str:
    return settings.SITE_URL + reverse("admin:disclosure_report_change", args=[report.pk])


def reporter_update(event):
    """A stage email to the reporter (acknowledged, question, triaged, ..., message)."""
    return _queue("reporter-update", event, event.report.reporter_email, status_link=True)


def sla_alert(event, to):
    """A warning (deadline near) or an escalation (deadline missed) to the team."""
    return _queue("team-sla-alert", event, to)


def p1_page(event):
    """A report was triaged as, or raised to, P1: page ``P1_ALERT_EMAIL`` at once."""
    return _queue("team-p1-alert", event, settings.P1_ALERT_EMAIL)


def breach_alert(event, to):
    """A breach notification deadline is near (warning) or missed (escalation)."""
    return _queue("team-breach-alert", event, to)


def breach_recorded(event, to):
    """A personal-data breach was recorded (or revised): its clocks run from now on."""
    return _queue("team-breach-recorded", event, to)


def daily_digest(now):
    """The team's morning summary; at most one per local day (its Message-ID is the date)."""
    day = sla.local_date(now)
    attention = (Report.objects.open()
                 .filter(Report.objects.sla_state_filters(now)[SlaState.OVERDUE]
                         | Report.objects.sla_state_filters(now)[SlaState.DUE_TODAY])
                 .select_related("assignee").order_by("due_at")[:50])
    new = Report.objects.filter(received_at__gte=now - timedelta(days=1)).order_by("received_at")[:50]
    email = _put("team-digest", settings.SECURITY_TEAM_EMAIL, {
        "day": day, "now": now, "metrics": sla_metrics(now), "attention": list(attention), "new": list(new),
        "queue_url": settings.SITE_URL + "/admin/disclosure/report/",
    }, message_id=f"<digest.{day.isoformat()}@{_domain()}>", now=now)
    send_after_commit([email])
    return email


def key_expiry(key, now):
    """Warn the team that the PGP key (used for security.txt and encryption) will expire."""
    email = _put("team-key-expiry", settings.SECURITY_TEAM_EMAIL, {"key": key, "now": now},
                 message_id=f"<key-expiry.{key.fingerprint[-16:].lower()}.{now:%Y%m%d}@{_domain()}>", now=now)
    send_after_commit([email])
    return email


def rotation_due(due, now):
    """Remind the team (weekly, ``rotation.send_reminder``) of the credentials past their age."""
    email = _put("team-rotation-due", settings.SECURITY_TEAM_EMAIL, {
        "due": due, "now": now, "max_days": settings.SECRET_MAX_AGE_DAYS,
        "dashboard_url": settings.SITE_URL + reverse("staff-metrics"),
    }, message_id=f"<rotation-due.{now:%Y%m%d}@{_domain()}>", now=now)
    send_after_commit([email])
    return email


REPORTER_STAGES = {
    Event.Kind.REOPENED, Event.Kind.ACKNOWLEDGED, Event.Kind.INFO_REQUESTED, Event.Kind.TRIAGED, Event.Kind.FIXING,
    Event.Kind.RESOLVED, Event.Kind.DISCLOSED, Event.Kind.CLOSED, Event.Kind.TEAM_MESSAGE,
}


def notify(event: Event) -> list:
    """Queue the messages an event calls for. Called once, when the event is recorded.

    Reporters without an email address see the same updates on their status page.
    """
    report = event.report
    to_reporter = bool(report.reporter_email)
    queued = []
    if event.kind == Event.Kind.RECEIVED:
        if to_reporter:
            queued.append(receipt(event))
        queued.append(new_report_to_team(event))
    elif event.kind in REPORTER_STAGES:
        if to_reporter:
            queued.append(reporter_update(event))
    elif event.kind == Event.Kind.LINKS_REISSUED:
        if to_reporter:
            queued.append(_queue("reporter-links", event, report.reporter_email, status_link=True))
    elif event.kind in (Event.Kind.REPORTER_MESSAGE, Event.Kind.INFO_PROVIDED, Event.Kind.WITHDRAWN):
        queued.append(reporter_replied_to_team(event))
    elif event.kind in SLA_WARNINGS:
        recipients = {settings.SECURITY_TEAM_EMAIL}
        if report.assignee_id and report.assignee.email:
            recipients.add(report.assignee.email)
        queued.extend(sla_alert(event, to) for to in sorted(recipients))
    elif event.kind in SLA_ESCALATIONS:
        queued.append(sla_alert(event, settings.SLA_ESCALATION_EMAIL))
    elif event.kind == Event.Kind.BREACH_ASSESSED and event.data.get("personal_data"):
        recipients = _team_and_assignee(report) | {settings.SLA_ESCALATION_EMAIL}
        queued.extend(breach_recorded(event, to) for to in sorted(recipients))
    elif event.kind == Event.Kind.BREACH_WARNING:
        queued.extend(breach_alert(event, to) for to in sorted(_team_and_assignee(report)))
    elif event.kind == Event.Kind.BREACH_ESCALATION:
        queued.append(breach_alert(event, settings.SLA_ESCALATION_EMAIL))
    if incidents.is_p1_page(event):
        queued.append(p1_page(event))
    webhooks.queue_for(event)  # the team's tools: their own outbox (disclosure/webhooks.py)
    return send_after_commit(_save_all(queued)) if queued else []


def _team_and_assignee(report) -> set:
    recipients = {settings.SECURITY_TEAM_EMAIL}
    if report.assignee_id and report.assignee.email:
        recipients.add(report.assignee.email)
    return recipients


# --- Delivery ---------------------------------------------------------------------------
def deliver(email_id: int, now=None) -> bool:
    """Try to send one outbox row. Returns whether there was an attempt to make.

    Safe to call twice or from two workers at once: the attempt is claimed by
    compare-and-set first. Whatever goes wrong after the claim (the provider, a template,
    gpg, the database) is recorded on the row as its ``last_error`` and retried later with
    backoff (``disclosure.tasks.sweep`` re-queues due rows) until ``EMAIL_MAX_ATTEMPTS``,
    when the row is marked failed; it never propagates unless recording it fails too. An
    attempt whose worker died before recording anything is refused by ``claim`` once the
    attempts are used up.
    """
    now = now or timezone.now()
    email = OutboundEmail.objects.select_related("report", "status_link", "event__message").filter(pk=email_id).first()
    if email is None or email.state != OutboundEmail.State.PENDING or not email.claim(now):
        return False
    try:
        message = _message(email, now)
        if message is not None:
            message.send()
    except _NotWritten as exc:  # a template or data problem: recorded on the row like a provider error
        log.exception("Writing email %s failed", email.pk)
        email.mark_failed_attempt(now, str(exc))
        return True
    except Exception as exc:  # noqa: BLE001 - any failure (provider, gpg, database) is recorded and retried
        if _is_provider_error(exc):
            log.warning("Sending email %s (attempt %s of %s) failed: %s", email.pk, email.attempts,
                        settings.EMAIL_MAX_ATTEMPTS, exc)
        else:
            log.exception("Sending email %s (attempt %s of %s) failed unexpectedly", email.pk, email.attempts,
                          settings.EMAIL_MAX_ATTEMPTS)
        email.mark_failed_attempt(now, f"{type(exc).__name__}: {exc}")
        return True
    if message is not None:
        status = getattr(message, "anymail_status", None)
        email.mark_sent(now, getattr(status, "message_id", None) or "")
    return True


class _NotWritten(Exception):
    """The email could not be written from its event (its templates or data failed)."""


def _is_provider_error(exc: Exception) -> bool:
    """The mail provider said no (logged without a traceback): SMTP, network or ESP errors."""
    from smtplib import SMTPException

    from anymail.exceptions import AnymailError

    return isinstance(exc, SMTPException | ConnectionError | TimeoutError | AnymailError)


def _message(email: OutboundEmail, now):
    """The message to send for a claimed row, or None when there is nothing to send (the
    row was cancelled meanwhile, or was refused and marked failed here)."""
    if email.rendered_at is None and email.event_id and not email.body_text:
        try:
            _render(email, _context(email), now)
        except Exception as exc:
            raise _NotWritten(f"Could not write the email: {type(exc).__name__}: {exc}") from exc
        written = OutboundEmail.objects.filter(pk=email.pk, state=OutboundEmail.State.PENDING,
                                               rendered_at__isnull=True).update(
            subject=email.subject, body_text=email.body_text, body_html=email.body_html, rendered_at=now)
        if not written:
            return None  # cancelled meanwhile (the report was purged): nothing is sent

    text, html = email.body_text, email.body_html
    if email.needs_status_link and email.report_id:
        url = _fresh_status_url(email, now)
        text = text.replace(OutboundEmail.STATUS_LINK_MARK, url)
        html = html.replace(OutboundEmail.STATUS_LINK_MARK, escape(url))

    headers = {
        "Message-ID": email.message_id,
        "In-Reply-To": email.references,
        "References": email.references,
        "Auto-Submitted": "auto-generated",
        "Reply-To": tags.reply_to(email),
    }
    report = email.report
    encrypt_to = report.reporter_key if (report is not None and report.reporter_key
                                         and email.to.lower() == report.reporter_email.lower()) else ""
    mime_capable = settings.MAILERS["default"].get("BACKEND") in mime.MIME_CAPABLE_BACKENDS
    if encrypt_to and not mime_capable:
        # Never fall back to plaintext for a reporter who asked for encrypted mail.
        email.attempts = settings.EMAIL_MAX_ATTEMPTS
        email.mark_failed_attempt(now, "The configured mailer cannot send PGP/MIME, so this encrypted email was "
                                       "not sent. Use SMTP or Amazon SES (see the README).")
        return None
    subject = email.subject
    if encrypt_to:
        # The Subject travels outside the encryption: say nothing there but the tracking ID,
        # and repeat the real subject as the first line inside.
        subject = f"[{report.tracking_id}] Encrypted message about your report"
        text = f"Subject: {email.subject}\n\n{text}"
    sign = mime_capable and pgp.can_sign()
    message_class = mime.PGPMimeEmail if (sign or encrypt_to) else EmailMultiAlternatives
    extra = {"sign": sign, "encrypt_to": encrypt_to} if message_class is mime.PGPMimeEmail else {}
    message = message_class(subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL,
                            to=[email.to], headers=headers, **extra)
    if html and not encrypt_to:
        message.attach_alternative(html, "text/html")
    return message


def _fresh_status_url(email: OutboundEmail, now) -> str:
    """Mint the link this email carries.

    A link minted by an earlier attempt of the same email stays valid: that attempt may
    have reached the reporter (the provider accepted it, then the worker died before the
    row was marked sent), and its link must keep working. Only the lost-link flow revokes
    links. The row remembers the latest link.
    """
    with transaction.atomic():
        email.status_link, token = StatusLink.issue(email.report, now=now)
        email.save(update_fields=["status_link"])
    return StatusLink.url(token)
