"""The data model: a report, its status links, events, messages, attachments and outbox.

Every change of state goes through one ``Report`` method that checks the current status,
updates fields and deadlines, and records an ``Event``. Events drive notifications
(``disclosure.emails.notify``), which are queued as ``OutboundEmail`` rows in the same
transaction and delivered by the task queue after commit.
"""

import hashlib
import logging
import mimetypes
import re
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.validators import RegexValidator, validate_email
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from disclosure import sla, storage, tokens
from disclosure.pgp import sealing
from disclosure.severity import priority_for, score_vector
from disclosure.uploads import removed_on_failure, safe_filename

log = logging.getLogger(__name__)


class Status(models.TextChoices):
    NEW = "new", "New"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    NEEDS_INFO = "needs_info", "Needs more info"
    TRIAGED = "triaged", "Triaged (valid)"
    FIXING = "fixing", "Fixing"
    RESOLVED = "resolved", "Resolved"
    DISCLOSED = "disclosed", "Disclosed"
    DUPLICATE = "duplicate", "Closed: duplicate"
    INFORMATIVE = "informative", "Closed: informative"
    NOT_APPLICABLE = "not_applicable", "Closed: not applicable"
    OUT_OF_SCOPE = "out_of_scope", "Closed: out of scope"
    SPAM = "spam", "Closed: spam"
    WITHDRAWN = "withdrawn", "Withdrawn by reporter"


OPEN_STATUSES = frozenset(
    {Status.NEW, Status.ACKNOWLEDGED, Status.NEEDS_INFO, Status.TRIAGED, Status.FIXING}
)
CLOSING_OUTCOMES = frozenset(
    {Status.DUPLICATE, Status.INFORMATIVE, Status.NOT_APPLICABLE, Status.OUT_OF_SCOPE, Status.SPAM}
)
# Which statuses each team decision may start from (the report's state machine).
ACTIONS = {
    "acknowledge": frozenset({Status.NEW}),
    "request_info": frozenset({Status.NEW, Status.ACKNOWLEDGED, Status.TRIAGED, Status.FIXING}),
    "triage": frozenset({Status.NEW, Status.ACKNOWLEDGED, Status.NEEDS_INFO}),
    "start_fix": frozenset({Status.TRIAGED}),
    "resolve": frozenset({Status.TRIAGED, Status.FIXING}),
    "disclose": frozenset({Status.RESOLVED}),
    "close": OPEN_STATUSES,
    "rate": frozenset({Status.TRIAGED, Status.FIXING, Status.RESOLVED, Status.DISCLOSED}),
    "reopen": CLOSING_OUTCOMES | {Status.WITHDRAWN},
}
FINISHED_STATUSES = frozenset({Status.RESOLVED, Status.DISCLOSED, Status.WITHDRAWN} | CLOSING_OUTCOMES)

# What the reporter reads on the status page and in emails.
PLAIN_STATUS = {
    Status.NEW: "Received. The security team has not acknowledged it yet.",
    Status.ACKNOWLEDGED: "Acknowledged. The security team is assessing it.",
    Status.NEEDS_INFO: "Waiting for you. The security team has asked a question.",
    Status.TRIAGED: "Confirmed as a valid vulnerability. A fix is being planned.",
    Status.FIXING: "Confirmed. A fix is in progress.",
    Status.RESOLVED: "Resolved. The vulnerability has been fixed.",
    Status.DISCLOSED: "Resolved and publicly disclosed.",
    Status.DUPLICATE: "Closed: it duplicates a report we had already received.",
    Status.INFORMATIVE: "Closed: useful information, but not a vulnerability needing a fix.",
    Status.NOT_APPLICABLE: "Closed: not applicable.",
    Status.OUT_OF_SCOPE: "Closed: outside the scope of this programme.",
    Status.SPAM: "Closed.",
    Status.WITHDRAWN: "Withdrawn at your request.",
}
# The name of a status as the reporter reads it (status page, timeline, email): someone
# closed as spam reads a neutral "Closed", as the templated reply says.
PUBLIC_STATUS_LABELS = {Status.SPAM: "Closed"}


def public_status_label(status: str) -> str:
    return PUBLIC_STATUS_LABELS.get(status) or Status(status).label


class Severity(models.TextChoices):
    NONE = "none", "None"
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Priority(models.TextChoices):
    P1 = "P1", "P1 (critical)"
    P2 = "P2", "P2 (high)"
    P3 = "P3", "P3 (medium)"
    P4 = "P4", "P4 (low)"


cve_validator = RegexValidator(r"^CVE-\d{4}-\d{4,}$", "Enter a CVE ID such as CVE-2026-12345.")
cwe_validator = RegexValidator(r"^CWE-\d{1,5}$", "Enter a CWE ID such as CWE-79.")


class Milestone(models.TextChoices):
    PENDING = "pending", "Pending"
    MET = "met", "Met on time"
    LATE = "late", "Met late"
    NOT_NEEDED = "n/a", "Not needed (withdrawn)"


class AlertLevel(models.IntegerChoices):
    NONE = 0, "None"
    WARNED = 1, "Warned"
    ESCALATED = 2, "Escalated"


class SlaState(models.TextChoices):
    OVERDUE = "overdue", "Overdue"
    DUE_TODAY = "due_today", "Due today"
    DUE_SOON = "due_soon", "Due soon"
    ON_TRACK = "on_track", "On track"
    PAUSED = "paused", "Paused (waiting for reporter)"
    MET = "met", "Met"
    MET_LATE = "met_late", "Met late"


class Channel(models.TextChoices):
    FORM = "form", "Form"
    EMAIL = "email", "Email"


class IntakeHold(models.TextChoices):
    NONE = "", "None"
    RATE_LIMITED = "rate_limited", "Held for review: over the email limits"
    DMARC_FAILED = "dmarc_failed", "Likely spam: DMARC failed"


class Credit(models.TextChoices):
    NONE = "none", "Do not credit me"
    NAME = "name", "Credit me by the name below"


class TransitionError(ValidationError):
    """An action that the report's current state does not allow."""


class TrackingCounter(models.Model):
    """The last tracking number handed out in a year (``VDP-2026-0001``)."""

    year = models.PositiveIntegerField(primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    @classmethod
    def next_tracking_id(cls, year: int) -> str:
        """Reserve the next number; call inside the transaction that saves the report.

        The UPDATE takes a row lock that is held until commit, so concurrent submissions
        never share a number and a failed one leaves no gap. Keep that transaction to the
        inserts: everything slow belongs before it (see ``Report.submit``).
        """
        number = cls._increment(year)
        if number is None:
            try:
                with transaction.atomic():
                    cls.objects.create(year=year, last_number=1)
                number = 1
            except IntegrityError:  # another submission created the year's row first
                number = cls._increment(year)
        return f"{settings.TRACKING_ID_PREFIX}-{year}-{number:04d}"

    @classmethod
    def _increment(cls, year: int) -> int | None:
        """Add one to the year's counter and read it back in one statement (UPDATE ...
        RETURNING, in SQLite and PostgreSQL); None when the year has no row yet."""
        table, quote = cls._meta.db_table, connection.ops.quote_name
        column = quote(cls._meta.get_field("last_number").column)
        sql = (f"UPDATE {quote(table)} SET {column} = {column} + 1 "  # noqa: S608  # nosec B608 - names from the model
               f"WHERE {quote(cls._meta.pk.column)} = %s RETURNING {column}")
        with connection.cursor() as cursor:
            cursor.execute(sql, [year])
            row = cursor.fetchone()
        return row[0] if row else None


class ReportQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=OPEN_STATUSES)

    def sla_state_filters(self, now) -> dict:
        """One ``Q`` per SLA state, for filters and counts in the database: the bands of
        ``sla.deadline_bands`` on the stored running deadline (``due_at``), then the same
        rules as ``Report.sla_state`` for reports whose clock is not running."""
        filters = {}
        for state, start, until in sla.deadline_bands(now, settings.SLA_WARN_BUSINESS_DAYS):
            band = Q(due_at__isnull=False)
            if start is not None:
                band &= Q(due_at__gte=start)
            if until is not None:
                band &= Q(due_at__lt=until)
            filters[state] = band
        pending = Q(ack_milestone=Milestone.PENDING) | Q(assess_milestone=Milestone.PENDING)
        late = Q(ack_milestone=Milestone.LATE) | Q(assess_milestone=Milestone.LATE)
        filters[SlaState.PAUSED] = Q(due_at__isnull=True) & pending
        filters[SlaState.MET] = ~pending & ~late
        filters[SlaState.MET_LATE] = ~pending & late
        return filters

    def purgeable(self, now):
        """Finished reports past the retention period, not on legal hold, not yet purged."""

        cutoff = now - timedelta(days=settings.RETENTION_DAYS)
        return (self.filter(status__in=FINISHED_STATUSES, legal_hold=False, purged_at__isnull=True)
                .annotate(finished_at=Coalesce("closed_at", "disclosed_at", "resolved_at", "updated_at"))
                .filter(finished_at__lt=cutoff))

    def hall_of_fame(self):
        """Researchers who asked for credit, once their report is resolved or disclosed."""
        return (self.filter(status__in=[Status.RESOLVED, Status.DISCLOSED], credit=Credit.NAME)
                .exclude(credit_name="").order_by("-resolved_at").values("credit_name", "resolved_at", "severity"))

    def in_sla_state(self, state, now):
        return self.filter(self.sla_state_filters(now)[state])


class Report(models.Model):
    tracking_id = models.CharField(max_length=40, unique=True, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW, db_index=True)

    # What the reporter told us. Field names are the public form contract.
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Markdown as written by the reporter (empty when sealed "
                                                          "with the other fields in sealed_content).")
    asset = models.CharField("affected asset", max_length=500, blank=True,
                             help_text="Affected URL, product or component, as given by the reporter.")
    vulnerability_type = models.CharField(max_length=200, blank=True,
                                          help_text="Vulnerability class or CWE as given by the reporter.")
    steps_to_reproduce = models.TextField(blank=True)
    impact = models.TextField(blank=True)
    sealed_content = models.TextField(blank=True, editable=False, help_text=(
        "The description, steps and impact the portal sealed to the team key on arrival: one OpenPGP message "
        "with JSON inside (see disclosure.pgp.sealing)."))
    reporter_name = models.CharField(max_length=200, blank=True)
    reporter_email = models.EmailField(blank=True, help_text="Empty when the reporter stays anonymous.")
    credit = models.CharField(max_length=10, choices=Credit.choices, default=Credit.NONE,
                              help_text="Whether the reporter wants public credit once the report is resolved.")
    credit_name = models.CharField(max_length=200, blank=True, help_text="Name or handle to credit.")
    reporter_key = models.TextField(blank=True, editable=False,
                                    help_text="The reporter's public key (minimal export): email to them is encrypted.")
    reporter_key_fingerprint = models.CharField(max_length=40, blank=True, editable=False)

    # Assessment by the team.
    severity = models.CharField(max_length=10, choices=Severity.choices, blank=True)
    cvss_vector = models.CharField("CVSS vector", max_length=200, blank=True,
                                   help_text="CVSS 3.1 or 4.0 vector; the score and severity are computed from it.")
    cvss_score = models.DecimalField("CVSS score", max_digits=3, decimal_places=1, null=True, blank=True)
    priority = models.CharField(max_length=2, choices=Priority.choices, blank=True, db_index=True,
                                help_text="Follows the severity: P1 critical to P4 low, as in the incident-response "
                                          "plan.")
    cwe = models.CharField("CWE", max_length=12, blank=True, validators=[cwe_validator],
                           help_text="The team's classification, for example CWE-79.")
    cve_id = models.CharField("CVE ID", max_length=20, blank=True, validators=[cve_validator])
    planned_disclosure_date = models.DateField(null=True, blank=True,
                                               help_text="Agreed with the reporter; shown on their status page.")
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="assigned_reports")
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="duplicates")
    status_before_info = models.CharField(max_length=20, choices=Status.choices, blank=True, editable=False)

    # Lifecycle timestamps.
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    assessed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    disclosed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    info_requested_at = models.DateTimeField(null=True, blank=True, editable=False,
                                             help_text="Start of the current pause of the assessment clock.")
    updated_at = models.DateTimeField(auto_now=True)

    # Deadlines, stored so the sweep can find what is due with an indexed query.
    ack_due_at = models.DateTimeField("acknowledgement due", null=True, blank=True)
    due_at = models.DateTimeField("next deadline", null=True, blank=True, editable=False, help_text=(
        "The deadline now running: acknowledgement, then assessment; empty while paused or once both are met."))
    assess_due_at = models.DateTimeField("assessment due", null=True, blank=True)
    ack_milestone = models.CharField("acknowledgement", max_length=10, choices=Milestone.choices,
                                     default=Milestone.PENDING)
    assess_milestone = models.CharField("assessment", max_length=10, choices=Milestone.choices,
                                        default=Milestone.PENDING)
    # SLA alerts: the next time the sweep must look at a milestone (warning, then
    # escalation), and how far it has got. Null once nothing more is due.
    ack_alert_level = models.PositiveSmallIntegerField(choices=AlertLevel.choices, default=AlertLevel.NONE,
                                                       editable=False)
    assess_alert_level = models.PositiveSmallIntegerField(choices=AlertLevel.choices, default=AlertLevel.NONE,
                                                          editable=False)
    ack_next_alert_at = models.DateTimeField(null=True, blank=True, editable=False)
    assess_next_alert_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Retention.
    legal_hold = models.BooleanField(default=False, help_text=(
        "Exempts the report from the automatic purge of closed reports (for example during legal proceedings)."))
    purged_at = models.DateTimeField(null=True, blank=True, editable=False,
                                     help_text="When the reporter's content and contact details were deleted.")

    # Intake by email (disclosure/inbound/).
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.FORM, db_index=True,
                               help_text="How the report arrived: the web form or an email to the team's address.")
    intake_hold = models.CharField("held on arrival", max_length=20, choices=IntakeHold.choices, blank=True,
                                   default="", help_text=(
                                       "Why an emailed report was filed without a receipt: more reports by email "
                                       "than the hourly limits allow, or a failed DMARC check."))
    reply_tag = models.CharField(max_length=32, unique=True, null=True, blank=True, editable=False, help_text=(
        "The tag in the Reply-To address of email to the reporter (security+<tag>@...): a truncated HMAC of "
        "the report under SECRET_KEY, so replies find their report."))
    previous_reply_tag = models.CharField(max_length=32, unique=True, null=True, blank=True, editable=False, help_text=(
        "The tag this report's email carried before SECRET_KEY changed: a reply to that email still finds the "
        "report while the former key is in SECRET_KEY_FALLBACKS."))
    reporter_email_bounced_at = models.DateTimeField(null=True, blank=True, editable=False, help_text=(
        "When an email to the reporter last bounced: their address may be wrong."))

    # Hash of the one-time form nonce, so a double submit finds the first report.
    submission_key_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["ack_due_at"], name="report_ack_due_open",
                         condition=Q(ack_milestone="pending")),
            models.Index(fields=["assess_due_at"], name="report_assess_due_open",
                         condition=Q(assess_milestone="pending")),
            models.Index(fields=["due_at"], name="report_running_deadline", condition=Q(due_at__isnull=False)),
            models.Index(fields=["ack_next_alert_at"], name="report_ack_alert_due",
                         condition=Q(ack_next_alert_at__isnull=False)),
            models.Index(fields=["assess_next_alert_at"], name="report_assess_alert_due",
                         condition=Q(assess_next_alert_at__isnull=False)),
        ]
        permissions = [("export_report", "Can export reports"),
                       ("set_legal_hold", "Can place or lift a legal hold")]

    def __str__(self):
        return f"{self.tracking_id}: {self.title}"

    # --- Reading ------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def available_actions(self) -> list[str]:
        """The decisions the current status allows, in workflow order."""
        return [name for name, allowed in ACTIONS.items() if self.status in allowed]

    @property
    def plain_status(self) -> str:
        return PLAIN_STATUS[Status(self.status)]

    def content(self) -> dict:
        """The reporter's text fields, revealed (``sealing.Revealed`` by field name):
        decrypting costs a gpg run, so call this only where the text is shown."""
        return sealing.reveal_fields({name: getattr(self, name) for name in sealing.SEALED_REPORT_FIELDS},
                                     self.sealed_content)

    @property
    def current_milestone(self) -> str | None:
        """"ack" or "assess": the milestone whose clock is running (its deadline is ``due_at``)."""
        if self.ack_milestone == Milestone.PENDING:
            return "ack"
        if self.assess_milestone == Milestone.PENDING and self.status != Status.NEEDS_INFO:
            return "assess"
        return None

    @property
    def public_status_label(self) -> str:
        """The status as the reporter reads it (never "spam")."""
        return public_status_label(self.status)

    def public_events(self):
        return (self.events.filter(public=True).select_related("message")
                .prefetch_related("message__attachments").order_by("created_at", "pk"))

    # --- Creating -----------------------------------------------------------------------
    @classmethod
    def submit(cls, *, fields: dict, files=(), submission_key: str = "", now: datetime | None = None):
        """Create a report, its attachments, a status link and the ``received`` event.

        Returns ``(report, status_token)``; the token is the only copy of the secret. When
        ``submission_key`` was already used (a double submit), returns the existing report
        and a fresh link to it instead of creating a second report.
        """
        now = now or timezone.now()
        key_hash = tokens.token_hash(submission_key) if submission_key else None
        if key_hash:
            existing = cls.objects.filter(submission_key_hash=key_hash).first()
            if existing is not None:
                return existing, StatusLink.mint(existing, now=now)
        # Everything slow (encryption, files, validation) happens before the transaction:
        # concurrent submissions then queue only for the tracking number and the inserts.
        report = cls(**fields, submission_key_hash=key_hash, received_at=now)
        report.full_clean(exclude=["submission_key_hash", "tracking_id"], validate_unique=False)
        report.seal()
        report.recompute_deadlines(now)
        try:
            with removed_on_failure() as stored:
                stored.extend(Attachment.prepare(report, upload, now=now) for upload in files)
                with transaction.atomic():
                    report.tracking_id = TrackingCounter.next_tracking_id(sla.local_date(now).year)
                    report.save()
                    for attachment in stored:
                        attachment.report = report
                    Attachment.objects.bulk_create(stored)
                    token = StatusLink.mint(report, now=now)
                    report.record(Event.Kind.RECEIVED, to_status=Status.NEW, now=now, public=True)
        except IntegrityError:
            # Two requests with the same form raced (a double click): the first one won.
            existing = cls.objects.filter(submission_key_hash=key_hash).first() if key_hash else None
            if existing is None:
                raise
            return existing, StatusLink.mint(existing, now=now)
        return report, token

    def seal(self):
        """Seal the reporter's text fields to the team key, together, when storing
        encrypted (see disclosure.pgp.sealing)."""
        values, self.sealed_content = sealing.seal_fields(
            {name: getattr(self, name) for name in sealing.SEALED_REPORT_FIELDS})
        for name, value in values.items():
            setattr(self, name, value)

    @classmethod
    def reissue_links(cls, email: str, *, now=None) -> int:
        """Revoke every status link of the reports sent from ``email`` and email a fresh one
        for each (minted when the email is sent). Returns how many reports there were."""
        now = now or timezone.now()
        count = 0
        with transaction.atomic():
            for report in cls.objects.filter(reporter_email__iexact=email.strip()).order_by("pk"):
                report.status_links.filter(revoked_at__isnull=True).update(revoked_at=now)
                report.record(Event.Kind.LINKS_REISSUED, now=now)
                count += 1
        return count

    # --- Deadlines ----------------------------------------------------------------------
    def recompute_deadlines(self, now: datetime) -> None:
        """Set the stored deadlines, milestone outcomes and next SLA alert from the state.

        The one place deadlines are decided. Acknowledgement is due a number of business
        days after receipt; assessment likewise, extended by the business days the report
        spent waiting for the reporter ("needs more info" pauses that clock). The next
        alert is the warning time until a warning was recorded, then the deadline, then
        none; a paused clock raises no alert.
        """
        self.ack_due_at = sla.business_deadline(self.received_at, settings.SLA_ACKNOWLEDGE_DAYS)
        self.ack_milestone = self._milestone(self.acknowledged_at, self.ack_due_at)

        paused = self.paused_business_days()
        due = sla.business_deadline(self.received_at, settings.SLA_ASSESS_DAYS)
        self.assess_due_at = sla.extend_deadline(due, paused) if paused else due
        self.assess_milestone = self._milestone(self.assessed_at, self.assess_due_at)

        self.due_at = {"ack": self.ack_due_at, "assess": self.assess_due_at, None: None}[self.current_milestone]
        self.ack_next_alert_at = self._next_alert(self.ack_milestone, self.ack_alert_level, self.ack_due_at)
        self.assess_next_alert_at = (
            None if self.status == Status.NEEDS_INFO
            else self._next_alert(self.assess_milestone, self.assess_alert_level, self.assess_due_at)
        )

    def _milestone(self, met_at, due_at) -> str:
        if met_at:
            return Milestone.MET if met_at <= due_at else Milestone.LATE
        if not self.is_open:
            return Milestone.NOT_NEEDED
        return Milestone.PENDING

    @staticmethod
    def _next_alert(milestone, level, due_at):
        if milestone != Milestone.PENDING or level >= AlertLevel.ESCALATED:
            return None
        if level == AlertLevel.WARNED:
            return due_at
        return sla.warning_time(due_at, settings.SLA_WARN_BUSINESS_DAYS)

    def paused_business_days(self) -> int:
        """Business days spent waiting for the reporter before the assessment was made.

        A pause runs from a question (``info_requested``) to the reporter's answer
        (``info_provided``); a pause still open when the team assessed the report ends at
        the assessment.
        """
        if not self.pk:
            return 0
        total, started = 0, None
        pauses = self.events.filter(kind__in=[Event.Kind.INFO_REQUESTED, Event.Kind.INFO_PROVIDED])
        for kind, at in pauses.order_by("created_at", "pk").values_list("kind", "created_at"):
            if self.assessed_at and at > self.assessed_at:
                break
            if kind == Event.Kind.INFO_REQUESTED and started is None:
                started = at
            elif kind == Event.Kind.INFO_PROVIDED and started is not None:
                total += sla.business_days_between(started, at)
                started = None
        if started is not None and self.assessed_at:
            total += sla.business_days_between(started, self.assessed_at)
        return total

    def sla_state(self, now: datetime) -> str:
        """The queue badge: the band of the running deadline (``sla.deadline_bands``), else
        paused (waiting for the reporter), met or met late. ``sla_state_filters`` is the
        same rule in the database."""
        if self.due_at is not None:
            return SlaState(sla.deadline_state(self.due_at, now, settings.SLA_WARN_BUSINESS_DAYS))
        if Milestone.PENDING in (self.ack_milestone, self.assess_milestone):
            return SlaState.PAUSED
        if Milestone.LATE in (self.ack_milestone, self.assess_milestone):
            return SlaState.MET_LATE
        return SlaState.MET

    # --- Changing state -----------------------------------------------------------------
    def record(self, kind, *, actor=None, now=None, public=False, message=None, to_status="",
               from_status="", data=None):
        """Append one event to the audit trail; its notifications are queued with it."""
        from disclosure import emails  # emails reads the models: imported when first needed

        event = self._add_event(kind, actor=actor, now=now, public=public, message=message, to_status=to_status,
                                from_status=from_status, data=data)
        emails.notify(event)
        return event

    def _add_event(self, kind, *, actor=None, now=None, public=False, message=None, to_status="",
                   from_status="", data=None):
        return Event.objects.create(
            report=self, kind=kind, actor=actor, created_at=now or timezone.now(), public=public,
            message=message, from_status=from_status, to_status=to_status, data=data or {},
        )

    def _lock(self):
        """Take the row lock and reload, so concurrent actions see each other's result."""
        list(Report.objects.select_for_update().filter(pk=self.pk).values_list("pk"))
        self.refresh_from_db()

    def _check_allowed(self, to_status, allowed_from):
        if self.status not in allowed_from:
            raise TransitionError(
                f"{self.tracking_id} is {self.get_status_display().lower()}; "
                f"it cannot be moved to {Status(to_status).label.lower()}."
            )

    def _transition(self, to_status, kind, *, allowed_from, actor, now, body="", data=None, changes=None):
        """Check, change, recompute deadlines, save and record: the shape of every action.

        ``changes`` is a function applied to the locked report before the status moves;
        ``body`` becomes a message to the reporter shown with the event.
        """
        now = now or timezone.now()
        with transaction.atomic():
            self._lock()
            self._check_allowed(to_status, allowed_from)
            if changes:
                changes(self)
            from_status, self.status = self.status, to_status
            self.recompute_deadlines(now)
            self.save()
            message = None
            if body.strip():
                message = Message.objects.create(report=self, kind=Message.Kind.TO_REPORTER, author=actor,
                                                 body=body.strip(), created_at=now)
            return self.record(kind, actor=actor, now=now, public=True, message=message,
                               from_status=from_status, to_status=to_status, data=data)

    def acknowledge(self, actor, *, body="", now=None):
        """A team member has read the report: meets the acknowledgement milestone."""
        now = now or timezone.now()
        return self._transition(Status.ACKNOWLEDGED, Event.Kind.ACKNOWLEDGED, allowed_from=ACTIONS["acknowledge"],
                                actor=actor, now=now, body=body,
                                changes=lambda r: setattr(r, "acknowledged_at", now))

    def request_info(self, actor, question: str, *, now=None):
        """Ask the reporter a question; the assessment clock pauses until they answer."""
        now = now or timezone.now()
        if not question.strip():
            raise TransitionError("Write the question for the reporter.")

        def changes(report):
            report.status_before_info = Status.ACKNOWLEDGED if report.status == Status.NEW else report.status
            report.acknowledged_at = report.acknowledged_at or now
            report.info_requested_at = now

        return self._transition(Status.NEEDS_INFO, Event.Kind.INFO_REQUESTED,
                                allowed_from=ACTIONS["request_info"],
                                actor=actor, now=now, body=question, changes=changes)

    def triage(self, actor, severity: str = "", *, cvss_vector: str = "", body="", now=None):
        """Confirm the report as a valid vulnerability: meets the assessment milestone.

        Needs a severity, given directly or computed from a CVSS vector."""
        now = now or timezone.now()
        score = self._score(cvss_vector) if cvss_vector.strip() else None
        severity = score.severity if score else severity
        if severity not in Severity.values or severity == Severity.NONE:
            raise TransitionError("Triaging a report as valid needs a severity (low, medium, high or critical).")

        def changes(report):
            report._apply_severity(severity, score)
            report.acknowledged_at = report.acknowledged_at or now
            report.assessed_at = report.assessed_at or now
            report._stop_waiting_for_answer(actor, now)
            report._end_pause()

        return self._transition(Status.TRIAGED, Event.Kind.TRIAGED,
                                allowed_from=ACTIONS["triage"],
                                actor=actor, now=now, body=body, changes=changes,
                                data={"severity": severity, "cvss": score.vector if score else "",
                                      "priority": priority_for(severity)})

    @staticmethod
    def _score(vector):
        try:
            return score_vector(vector)
        except ValueError as error:
            raise TransitionError(str(error)) from None

    def _apply_severity(self, severity, score=None):
        self.severity = severity
        self.cvss_vector = score.vector if score else ""
        self.cvss_score = score.score if score else None
        self.priority = priority_for(severity)

    def rate(self, actor, severity: str = "", *, cvss_vector: str = "", now=None):
        """Set or change the severity (and priority) without changing the status."""
        now = now or timezone.now()
        score = self._score(cvss_vector) if cvss_vector.strip() else None
        severity = score.severity if score else severity
        if severity not in Severity.values:
            raise TransitionError("Choose a severity or give a CVSS vector.")
        with transaction.atomic():
            self._lock()
            if self.status not in ACTIONS["rate"]:
                raise TransitionError(f"{self.tracking_id} is {self.get_status_display().lower()}: triage it as "
                                      "valid to give it a severity.")
            from_priority = self.priority
            self._apply_severity(severity, score)
            self.save()
            return self.record(Event.Kind.SEVERITY_SET, actor=actor, now=now, data={
                "severity": severity, "priority": self.priority, "from_priority": from_priority,
                "cvss": self.cvss_vector,
                "score": float(self.cvss_score) if self.cvss_score is not None else None})

    def start_fix(self, actor, *, body="", now=None):
        return self._transition(Status.FIXING, Event.Kind.FIXING, allowed_from=ACTIONS["start_fix"],
                                actor=actor, now=now, body=body)

    def resolve(self, actor, *, body="", now=None):
        now = now or timezone.now()
        return self._transition(Status.RESOLVED, Event.Kind.RESOLVED, allowed_from=ACTIONS["resolve"],
                                actor=actor, now=now, body=body, changes=lambda r: setattr(r, "resolved_at", now))

    def disclose(self, actor, *, body="", now=None):
        now = now or timezone.now()
        return self._transition(Status.DISCLOSED, Event.Kind.DISCLOSED, allowed_from=ACTIONS["disclose"],
                                actor=actor, now=now, body=body, changes=lambda r: setattr(r, "disclosed_at", now))

    def close(self, actor, outcome: str, *, body="", duplicate_of=None, now=None):
        """Close with an outcome (duplicate, informative, ...): meets both milestones."""
        now = now or timezone.now()
        if outcome not in CLOSING_OUTCOMES:
            raise TransitionError(f"{outcome!r} is not a closing outcome.")
        if outcome == Status.DUPLICATE:
            if duplicate_of is None:
                raise TransitionError("A duplicate must name the original report.")
            if duplicate_of.pk == self.pk:
                raise TransitionError("A report cannot be a duplicate of itself.")
        elif duplicate_of is not None:
            raise TransitionError("Only a duplicate names an original report.")

        def changes(report):
            report.duplicate_of = duplicate_of
            report.acknowledged_at = report.acknowledged_at or now
            report.assessed_at = report.assessed_at or now
            report.closed_at = now
            report._stop_waiting_for_answer(actor, now)
            report._end_pause()

        data = {"outcome": outcome}
        if duplicate_of is not None:
            data["duplicate_of"] = duplicate_of.tracking_id
        return self._transition(outcome, Event.Kind.CLOSED, allowed_from=ACTIONS["close"], actor=actor, now=now,
                                body=body, changes=changes, data=data)

    def reopen(self, actor, *, body="", now=None):
        """Bring a closed or withdrawn report back to the queue (acknowledged)."""
        now = now or timezone.now()

        def changes(report):
            report.closed_at = None
            report.duplicate_of = None

        return self._transition(Status.ACKNOWLEDGED, Event.Kind.REOPENED, allowed_from=ACTIONS["reopen"],
                                actor=actor, now=now, body=body, changes=changes)

    def withdraw(self, *, now=None):
        """The reporter takes the report back (from the status page); the team is told."""
        now = now or timezone.now()

        def changes(report):
            report.closed_at = now
            report._end_pause()

        return self._transition(Status.WITHDRAWN, Event.Kind.WITHDRAWN, allowed_from=OPEN_STATUSES, actor=None,
                                now=now, changes=changes)

    def _end_pause(self):
        self.status_before_info = ""
        self.info_requested_at = None

    def _stop_waiting_for_answer(self, actor, now):
        """The team decided (triage, close) while its question was open: tell the reporter,
        on their timeline, that the report no longer waits for their answer. An answer
        that comes later is still shown as the answer to that question."""
        if self.status != Status.NEEDS_INFO:
            return
        asked = self.info_requested_at or now
        self.record(Event.Kind.INFO_NOT_AWAITED, actor=actor, now=now, public=True,
                    data={"question_at": asked.isoformat()})

    def _question_left_open(self) -> dict:
        """``{"answers_question_at": ...}`` when the reporter's message is the first word from
        them since the team went ahead without their answer; otherwise ``{}``."""
        last = (self.events.filter(kind__in=[Event.Kind.INFO_REQUESTED, Event.Kind.INFO_PROVIDED,
                                              Event.Kind.REPORTER_MESSAGE, Event.Kind.INFO_NOT_AWAITED])
                .order_by("-created_at", "-pk").only("kind", "data").first())
        if last is not None and last.kind == Event.Kind.INFO_NOT_AWAITED and last.data.get("question_at"):
            return {"answers_question_at": last.data["question_at"]}
        return {}

    def send_message(self, actor, body: str, *, now=None):
        """A message from the team to the reporter (emailed and shown on the status page)."""
        now = now or timezone.now()
        if not body.strip():
            raise TransitionError("The message is empty.")
        with transaction.atomic():
            self._lock()
            message = Message.objects.create(report=self, kind=Message.Kind.TO_REPORTER, author=actor,
                                             body=body.strip(), created_at=now)
            return self.record(Event.Kind.TEAM_MESSAGE, actor=actor, now=now, public=True, message=message)

    def assign(self, actor, assignee, *, now=None):
        """Give the report to a team member (or to nobody); recorded, not public."""
        now = now or timezone.now()
        with transaction.atomic():
            self._lock()
            if self.assignee_id == (assignee.pk if assignee else None):
                return None
            self.assignee = assignee
            self.recompute_deadlines(now)
            self.save()
            return self.record(Event.Kind.ASSIGNED, actor=actor, now=now,
                               data={"assignee": assignee.get_username() if assignee else ""})

    # What the team edits on a report besides decisions (the admin's form).
    DETAIL_FIELDS = ("assignee", "asset", "cwe", "cve_id", "planned_disclosure_date", "legal_hold")

    def update_details(self, actor, changes: dict, *, now=None) -> list:
        """Edit the team's details (``DETAIL_FIELDS``): validate, save, and record one
        ``updated`` event naming each changed field with its new value (a new assignee is
        recorded as ``assigned``, as by ``assign``). Placing or lifting a legal hold stops or
        restarts retention: it needs the ``set_legal_hold`` permission (Leads). Returns the
        events recorded; none when nothing changed."""
        now = now or timezone.now()
        unknown = set(changes) - set(self.DETAIL_FIELDS)
        if unknown:
            raise ValueError(f"Not a detail the team edits: {', '.join(sorted(unknown))}.")
        with transaction.atomic():
            self._lock()
            changed = {name: value for name, value in changes.items() if getattr(self, name) != value}
            if "legal_hold" in changed and not (actor is not None and actor.has_perm("disclosure.set_legal_hold")):
                raise PermissionDenied("Only a Lead can place or lift a legal hold.")
            if not changed:
                return []
            for name, value in changed.items():
                setattr(self, name, value)
            self.full_clean(exclude=[f.name for f in self._meta.fields if f.name not in changed],
                            validate_unique=False)
            self.save()
            events = []
            details = {name: _detail_text(value) for name, value in changed.items() if name != "assignee"}
            if details:
                events.append(self.record(Event.Kind.UPDATED, actor=actor, now=now, data=details))
            if "assignee" in changed:
                assignee = changed["assignee"]
                events.append(self.record(Event.Kind.ASSIGNED, actor=actor, now=now,
                                          data={"assignee": assignee.get_username() if assignee else ""}))
            return events

    def set_reporter_key(self, key, *, now=None):
        """The reporter replaces (``key`` from ``pgp.inspect_reporter_key``) or removes (None) their key."""
        now = now or timezone.now()
        with transaction.atomic():
            self._lock()
            self.reporter_key = key.armored if key else ""
            self.reporter_key_fingerprint = key.fingerprint if key else ""
            self.save(update_fields=["reporter_key", "reporter_key_fingerprint", "updated_at"])
            return self._add_event(Event.Kind.KEY_CHANGED, now=now, public=True,
                                   data={"fingerprint": self.reporter_key_fingerprint})

    def set_credit(self, credit: str, credit_name: str, *, now=None):
        """The reporter changes how they want to be credited."""
        now = now or timezone.now()
        with transaction.atomic():
            self._lock()
            self.credit, self.credit_name = credit, credit_name.strip()
            self.full_clean(exclude=["submission_key_hash"])
            self.save(update_fields=["credit", "credit_name", "updated_at"])
            return self._add_event(Event.Kind.CREDIT_CHANGED, now=now, public=True,
                                   data={"credit": credit, "credit_name": self.credit_name})

    def add_note(self, actor, body: str, *, now=None):
        """An internal note: never shown to the reporter."""
        now = now or timezone.now()
        if not body.strip():
            raise TransitionError("The note is empty.")
        with transaction.atomic():
            message = Message.objects.create(report=self, kind=Message.Kind.NOTE, author=actor, body=body.strip(),
                                             created_at=now)
            return self.record(Event.Kind.NOTE, actor=actor, now=now, message=message)

    def add_reporter_message(self, body: str, files=(), *, now=None, data=None, answers=True):
        """A follow-up from the reporter; answers a pending question and resumes the clock.

        ``data`` is kept on the event (an emailed message's sender and signature check);
        ``answers=False`` files it without ending a pause (mail from another address)."""
        from disclosure import emails  # see record()

        now = now or timezone.now()
        with removed_on_failure() as stored, transaction.atomic():
            self._lock()
            if not self.is_open:
                raise TransitionError("This report is closed.")
            message = Message.objects.create(report=self, kind=Message.Kind.FROM_REPORTER,
                                             body=sealing.seal_text(body), created_at=now)
            for upload in files:
                stored.append(Attachment.store(self, upload, now=now, message=message))
            if self.status != Status.NEEDS_INFO or not answers:
                return self.record(Event.Kind.REPORTER_MESSAGE, now=now, public=True, message=message,
                                   data={**self._question_left_open(), **(data or {})})
            from_status, self.status = self.status, self.status_before_info or Status.ACKNOWLEDGED
            self._end_pause()
            # The answer closes the pause: the event must exist before the deadline is
            # recomputed, and the team's email must see the new deadline.
            event = self._add_event(Event.Kind.INFO_PROVIDED, now=now, public=True, message=message,
                                    from_status=from_status, to_status=self.status, data=data)
            self.recompute_deadlines(now)
            self.save()
            emails.notify(event)
            return event

    # --- Retention ---------------------------------------------------------------------------
    PURGED = "[deleted after the retention period]"

    def purge(self, *, now=None) -> dict:
        """Delete the reporter's content, contact details, attachments, messages and email
        bodies; keep the record's dates, outcome, severity and deadlines for the figures."""
        now = now or timezone.now()
        with transaction.atomic():
            self._lock()
            if self.purged_at or self.legal_hold:
                return {}
            removed = {
                "attachments": self.attachments.all().delete()[0],
                "messages": self.messages.all().delete()[0],
                "emails": self.emails.update(body_text="", body_html="", to="", subject=f"[{self.tracking_id}]",
                                             rendered_at=Coalesce("rendered_at", now)),
                "emails_cancelled": self.emails.filter(state=OutboundEmail.State.PENDING).update(
                    state=OutboundEmail.State.FAILED, last_error="Cancelled: the report was purged."),
                "reporter_key": bool(self.reporter_key),
                "status_links": self.status_links.all().delete()[0],
                # The Inbound mail log's rows of this report: the sender's address, the subject
                # and any raw message kept (a bounce) go with the rest of the reporter's data.
                "inbound_mail": self.inbound_mail.all().delete()[0],
            }
            for name in sealing.SEALED_REPORT_FIELDS:
                setattr(self, name, self.PURGED if name == "description" else "")
            self.sealed_content = ""
            self.reporter_name = self.reporter_email = self.reporter_key = self.reporter_key_fingerprint = ""
            self.vulnerability_type = ""
            self.purged_at = now
            self.save()
            # Event details that quoted the reporter's data (edits, credit, key) go too.
            self.events.filter(kind__in=[Event.Kind.UPDATED, Event.Kind.CREDIT_CHANGED, Event.Kind.KEY_CHANGED]
                               ).update(data={})
            self._add_event(Event.Kind.PURGED, now=now, data=removed)
        return removed

    # --- SLA alerts -----------------------------------------------------------------------
    def raise_sla_alert(self, milestone: str, now: datetime) -> "Event | None":
        """Record the warning or escalation now due for one milestone, at most once.

        Handles one unit of the sweep: locks the report, re-reads the stored next alert
        time (another worker may have handled it), records the event, and moves the next
        alert on. Returns the event, or None when there was nothing to do.
        """
        prefix = {"ack": "ack", "assess": "assess"}[milestone]  # only these two name columns
        with transaction.atomic():
            self._lock()
            next_at = getattr(self, f"{prefix}_next_alert_at")
            if next_at is None or next_at > now:
                return None
            due = getattr(self, f"{prefix}_due_at")
            overdue = now > due
            kind = SLA_ALERTS[(prefix, overdue)]
            setattr(self, f"{prefix}_alert_level", AlertLevel.ESCALATED if overdue else AlertLevel.WARNED)
            self.recompute_deadlines(now)
            self.save()
            if self.events.filter(kind=kind).exists():
                return None
            return self.record(kind, now=now, data={"due": due.isoformat()})

    # --- Breach clocks (rules and clocks in disclosure/incidents.py) ---------------------------
    def assess_breach(self, actor, *, personal_data: bool, aware_at=None, categories="", approx_subjects=None,
                      now=None):
        """Record the breach assessment: personal data affected (starting the client and
        regulator clocks from ``aware_at``) or not. Recorded as a ``breach_assessed`` event."""
        from disclosure import incidents

        return incidents.assess(self, actor, personal_data=personal_data, aware_at=aware_at, categories=categories,
                                approx_subjects=approx_subjects, now=now or timezone.now())

    def record_breach_notice(self, actor, clock: str, *, notified_at=None, reference="", not_required_reason="",
                             now=None):
        """Clients or the regulator were notified (or need not be, with the reason): stops that clock."""
        from disclosure import incidents

        return incidents.record_notice(self, actor, clock, notified_at=notified_at, reference=reference,
                                       not_required_reason=not_required_reason, now=now or timezone.now())

    def raise_breach_alert(self, clock: str, now: datetime) -> "Event | None":
        """The sweep's unit for a breach clock: the warning or escalation now due, at most once."""
        from disclosure import incidents

        return incidents.raise_alert(self, clock, now)


def _detail_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


class StatusLink(models.Model):
    """A private link to a report's status page. Only the token's hash is stored.

    Every email to the reporter carries a link of its own (minted when the email is sent),
    so no raw token ever rests in the database. Revoking all of a report's links is how a
    lost or leaked link is replaced.
    """

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="status_links")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"Status link for {self.report.tracking_id} ({'revoked' if self.revoked_at else 'active'})"

    @classmethod
    def issue(cls, report: Report, *, now=None) -> tuple["StatusLink", str]:
        """Create a link; returns it with its token, the only copy of the secret."""
        token = tokens.new_token()
        link = cls.objects.create(report=report, token_hash=tokens.token_hash(token),
                                  created_at=now or timezone.now())
        return link, token

    @classmethod
    def mint(cls, report: Report, *, now=None) -> str:
        return cls.issue(report, now=now)[1]

    @classmethod
    def find_report(cls, token: str, reports=None):
        """The report an active token opens (from ``reports``, by default every report),
        or None. Tokens are random and looked up by their SHA-256, in one query."""
        if not token or len(token) > 100:
            return None
        reports = Report.objects.all() if reports is None else reports
        return reports.filter(status_links__token_hash=tokens.token_hash(token),
                              status_links__revoked_at__isnull=True).first()

    @staticmethod
    def url(token: str) -> str:
        return settings.SITE_URL + reverse("status", args=[token])


class Message(models.Model):
    """A message in either direction, or an internal note. Reporter messages are sealed
    like the report's text (see disclosure.pgp.sealing)."""

    class Kind(models.TextChoices):
        FROM_REPORTER = "from_reporter", "From the reporter"
        TO_REPORTER = "to_reporter", "To the reporter"
        NOTE = "note", "Internal note"

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               help_text="The team member who wrote it; empty for the reporter.")
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"{self.get_kind_display()} on {self.report.tracking_id}"


def attachment_path(instance, filename):
    # Random name, no extension: nothing the reporter chose reaches the file system.
    return f"attachments/{instance.report.received_at:%Y/%m}/{uuid.uuid4().hex}"


class Attachment(models.Model):
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=200)
    original_name = models.CharField(max_length=255, help_text="File name as given, made safe for display.")
    declared_type = models.CharField(max_length=100, blank=True,
                                     help_text="Content type claimed by the uploader; never trusted for serving.")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    encrypted = models.BooleanField(default=False, help_text="Stored as an OpenPGP message to the team key.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self) -> str:
        """The name without the ``.asc``/``.gpg`` an encrypting browser or researcher added."""
        return (sealing.strip_encrypted_suffix(self.original_name) if self.encrypted else "") or self.original_name

    @property
    def display_type(self) -> str:
        """The file's type as the researcher had it: what their browser declared, or, for a
        file they encrypted themselves, the type its name (without ``.asc``) suggests."""
        if self.display_name != self.original_name:
            return mimetypes.guess_type(self.display_name)[0] or "application/octet-stream"
        return self.declared_type or "application/octet-stream"

    def open_plain(self):
        """An open file of the content for a download, and its name: decrypted when it is
        sealed and the team key can decrypt here, otherwise the stored bytes (``.gpg`` added
        to the name). Read in chunks, so a large file never sits in memory; the caller
        closes it (a ``FileResponse`` does)."""
        handle = self.file.storage.open(self.file.name, "rb")
        if not self.encrypted:
            return handle, self.original_name
        return sealing.open_file_stream(handle, self.original_name)

    def read_plain(self) -> tuple[bytes, str]:
        """``open_plain()``, read whole (emails and tests)."""
        handle, name = self.open_plain()
        with handle:
            return handle.read(), name

    @classmethod
    def prepare(cls, report, upload, *, now=None, message=None) -> "Attachment":
        """Write an upload's file (sealed to the team key when storing encrypted) and
        return its row, not yet saved. The caller saves it, or deletes the file on failure
        (``uploads.removed_on_failure``).

        Size and SHA-256 describe the file as the researcher had it: computed before
        sealing, or, for a file they encrypted themselves, learnt when the form decrypted
        it to check it (``upload.plaintext``; unknown in offline-key mode)."""
        data = upload.read()
        stored, encrypted = sealing.seal_file(data)
        plaintext = getattr(upload, "plaintext", None)
        if plaintext is None:
            size, digest = len(data), hashlib.sha256(data).hexdigest()
        else:
            size, digest = plaintext.size, plaintext.sha256
        attachment = cls(report=report, message=message, original_name=safe_filename(upload.name),
                         declared_type=(upload.content_type or "")[:100], size=size, sha256=digest,
                         encrypted=encrypted, created_at=now or timezone.now())
        attachment.file.save("upload", ContentFile(stored), save=False)
        return attachment

    @classmethod
    def store(cls, report, upload, *, now=None, message=None) -> "Attachment":
        attachment = cls.prepare(report, upload, now=now, message=message)
        try:
            attachment.save()
        except BaseException:
            storage.discard(attachment.file.name)
            raise
        return attachment


class EventKind(models.TextChoices):
    RECEIVED = "received", "Report received"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    INFO_REQUESTED = "info_requested", "More information requested"
    INFO_PROVIDED = "info_provided", "Reporter answered"
    TRIAGED = "triaged", "Triaged as valid"
    FIXING = "fixing", "Fix in progress"
    RESOLVED = "resolved", "Resolved"
    DISCLOSED = "disclosed", "Disclosed"
    CLOSED = "closed", "Closed"
    WITHDRAWN = "withdrawn", "Withdrawn by reporter"
    REOPENED = "reopened", "Reopened"
    REPORTER_MESSAGE = "reporter_message", "Message from reporter"
    TEAM_MESSAGE = "team_message", "Message to reporter"
    NOTE = "note", "Internal note"
    ASSIGNED = "assigned", "Assigned"
    SEVERITY_SET = "severity_set", "Severity set"
    UPDATED = "updated", "Details updated"
    CREDIT_CHANGED = "credit_changed", "Credit preference changed"
    PURGED = "purged", "Content deleted (retention)"
    KEY_CHANGED = "key_changed", "Reporter's PGP key changed"
    ACK_WARNING = "ack_warning", "Acknowledgement due soon"
    ACK_ESCALATION = "ack_escalation", "Acknowledgement overdue"
    ASSESS_WARNING = "assess_warning", "Assessment due soon"
    ASSESS_ESCALATION = "assess_escalation", "Assessment overdue"
    LINKS_REISSUED = "links_reissued", "Status links reissued"
    INFO_NOT_AWAITED = "info_not_awaited", "Went ahead without the reporter's answer"
    EXPORTED = "exported", "Exported"
    EMAIL_BOUNCED = "email_bounced", "Email to reporter bounced"
    BREACH_ASSESSED = "breach_assessed", "Breach assessment recorded"
    BREACH_WARNING = "breach_warning", "Breach notification due soon"
    BREACH_ESCALATION = "breach_escalation", "Breach notification overdue"
    BREACH_NOTIFIED = "breach_notified", "Breach notification recorded"


# The SLA alerts by (milestone, overdue): a warning before the deadline, an escalation
# after it. Each is recorded at most once per report (a unique constraint on Event).
SLA_ALERTS = {
    ("ack", False): EventKind.ACK_WARNING,
    ("ack", True): EventKind.ACK_ESCALATION,
    ("assess", False): EventKind.ASSESS_WARNING,
    ("assess", True): EventKind.ASSESS_ESCALATION,
}
SLA_WARNINGS = frozenset(kind for (_, overdue), kind in SLA_ALERTS.items() if not overdue)
SLA_ESCALATIONS = frozenset(kind for (_, overdue), kind in SLA_ALERTS.items() if overdue)


class Event(models.Model):
    """One change to a report: the audit trail and what drives notifications."""

    Kind = EventKind

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              help_text="The team member who acted; empty for the reporter or the system.")
    from_status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL)
    public = models.BooleanField(default=False, help_text="Shown on the reporter's status page.")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["report", "created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["report", "kind"],
                                    condition=Q(kind__in=[kind.value for kind in SLA_ALERTS.values()]),
                                    name="event_sla_milestone_once"),
        ]

    def __str__(self):
        return f"{self.report.tracking_id}: {self.get_kind_display()}"

    @property
    def public_label(self) -> str:
        """How the reporter's timeline names this event."""
        if self.kind == self.Kind.CLOSED:
            return public_status_label(self.to_status)
        if self.kind == self.Kind.TRIAGED and self.data.get("severity"):
            return f"Confirmed as valid, severity {Severity(self.data['severity']).label.lower()}"
        if self.answers_question_at:
            return f"Your answer to the team's question of {_day(self.answers_question_at)}"
        return {self.Kind.TEAM_MESSAGE: "Message from the security team",
                self.Kind.REPORTER_MESSAGE: "Your message",
                self.Kind.INFO_PROVIDED: "Your answer",
                self.Kind.INFO_REQUESTED: "Question from the security team",
                self.Kind.INFO_NOT_AWAITED: "No longer waiting for your answer to the team's question",
                }.get(self.kind, self.get_kind_display())

    @property
    def answers_question_at(self) -> datetime | None:
        """For a reporter's message that answers a question the team went ahead without:
        when that question was asked."""
        asked = self.data.get("answers_question_at") if self.kind == self.Kind.REPORTER_MESSAGE else None
        return datetime.fromisoformat(asked) if asked else None

    @property
    def public_to_status_label(self) -> str:
        """The status this event moved the report to, as the reporter reads it."""
        return public_status_label(self.to_status) if self.to_status else ""

    @property
    def actor_label(self) -> str:
        if self.actor_id:
            return self.actor.get_username()
        if self.kind in (self.Kind.RECEIVED, self.Kind.REPORTER_MESSAGE, self.Kind.INFO_PROVIDED,
                         self.Kind.WITHDRAWN):
            return "reporter"
        return "system"


def _day(moment: datetime) -> str:
    from django.utils.dateformat import format as date_format

    return date_format(timezone.localtime(moment), "j F Y")


class OutboundEmail(models.Model):
    """The outbox: every message we send, with its delivery state.

    Rows are written in the transaction that records the event, and delivered by the queue
    after commit. A failed attempt is retried with backoff up to ``EMAIL_MAX_ATTEMPTS``;
    a final failure stays visible to staff in the admin.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    STATUS_LINK_MARK = "[[status-link]]"

    class Kind(models.TextChoices):
        RECEIPT = "receipt", "Receipt to reporter"
        REPORTER_UPDATE = "reporter-update", "Update to reporter"
        TEAM_NEW_REPORT = "team-new-report", "New report (team)"
        TEAM_REPORTER_MESSAGE = "team-reporter-message", "Reporter message (team)"
        TEAM_SLA_ALERT = "team-sla-alert", "Deadline alert (team)"
        TEAM_DIGEST = "team-digest", "Daily digest (team)"
        TEAM_KEY_EXPIRY = "team-key-expiry", "Key expiry warning (team)"
        REPORTER_LINKS = "reporter-links", "Fresh status link to reporter"
        TEAM_P1_ALERT = "team-p1-alert", "P1 page (team)"
        TEAM_BREACH_ALERT = "team-breach-alert", "Breach deadline alert (team)"
        TEAM_BREACH_RECORDED = "team-breach-recorded", "Breach recorded (team)"
        TEAM_ROTATION_DUE = "team-rotation-due", "Credential rotation reminder (team)"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    report = models.ForeignKey(Report, null=True, blank=True, on_delete=models.CASCADE, related_name="emails")
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.CASCADE, related_name="emails")
    to = models.EmailField()
    subject = models.CharField(max_length=300, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    rendered_at = models.DateTimeField(null=True, blank=True, help_text=(
        "When the message was written from its event: by the worker, at the first attempt to send it."))
    message_id = models.CharField(max_length=200, unique=True)
    references = models.CharField(max_length=200, blank=True,
                                  help_text="Message-ID of the report's thread, for In-Reply-To and References.")
    status_link = models.ForeignKey(StatusLink, null=True, blank=True, on_delete=models.SET_NULL, editable=False,
                                    help_text="The link minted for this email when it was sent.")
    needs_status_link = models.BooleanField(default=False)

    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    provider_id = models.CharField(max_length=200, blank=True, help_text="The mail provider's message ID.")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True, editable=False,
                                      help_text="When a delivery status notification said this email bounced.")
    bounce_detail = models.CharField(max_length=300, blank=True, editable=False,
                                     help_text="The bounce's status and diagnostic, as the remote server gave them.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "outgoing email"
        indexes = [
            models.Index(fields=["next_attempt_at"], name="outbox_pending_due", condition=Q(state="pending")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event", "kind", "to"], name="outbox_once_per_event_recipient"),
        ]

    def __str__(self):
        return f"{self.subject or self.get_kind_display()} -> {self.to} ({self.state})"

    def claim(self, now) -> bool:
        """Take this attempt (compare-and-set); False when another worker has it or it is done.

        Claiming pushes ``next_attempt_at`` past the task timeout, so an attempt whose worker
        died is retried by the sweep rather than lost. A row that has used up
        ``EMAIL_MAX_ATTEMPTS`` is never claimed again: its last attempt ended without
        recording an outcome (the worker died, or recording failed), so it is marked failed
        here, with that reason, where staff and /healthz see it.
        """
        if self.attempts >= settings.EMAIL_MAX_ATTEMPTS:
            reason = (f"Gave up after {self.attempts} attempts: the last one ended without recording its outcome "
                      "(the worker stopped or the database failed between claiming and recording it).")
            if self.last_error:
                reason += f" Earlier error: {self.last_error}"
            given_up = OutboundEmail.objects.filter(
                pk=self.pk, state=self.State.PENDING, attempts=self.attempts, next_attempt_at__lte=now,
            ).update(state=self.State.FAILED, last_error=reason[:2000])
            if given_up:
                self.state, self.last_error = self.State.FAILED, reason[:2000]
                log.error("Email %s: %s", self.pk, reason)
            return False
        lease = timedelta(seconds=settings.Q_CLUSTER["timeout"] * 2)
        claimed = OutboundEmail.objects.filter(
            pk=self.pk, state=self.State.PENDING, attempts=self.attempts, next_attempt_at__lte=now,
        ).update(attempts=F("attempts") + 1, next_attempt_at=now + lease)
        if claimed:
            self.attempts += 1
            self.next_attempt_at = now + lease
        return bool(claimed)

    def mark_sent(self, now, provider_id=""):
        self.state, self.sent_at, self.provider_id, self.last_error = self.State.SENT, now, provider_id[:200], ""
        self.save(update_fields=["state", "sent_at", "provider_id", "last_error"])

    def mark_failed_attempt(self, now, error: str):
        """Record a failure and schedule the next attempt, or give up after the last one."""
        self.last_error = error[:2000]
        if self.attempts >= settings.EMAIL_MAX_ATTEMPTS:
            self.state = self.State.FAILED
        else:
            backoff = settings.EMAIL_RETRY_SECONDS * (2 ** (self.attempts - 1))
            self.next_attempt_at = now + timedelta(seconds=backoff)
        self.save(update_fields=["state", "last_error", "next_attempt_at"])

    def retry(self, now):
        """Put a failed email back in the queue (staff action)."""
        OutboundEmail.objects.filter(pk=self.pk, state=self.State.FAILED).update(
            state=self.State.PENDING, attempts=0, next_attempt_at=now)


def _default_contacts():
    return settings.SECURITY_TEAM_EMAIL


def _default_languages():
    return settings.PREFERRED_LANGUAGES


def _default_hiring():
    return settings.HIRING_URL


def _default_csaf():
    return settings.CSAF_URL


class Programme(models.Model):
    """The programme's editable settings (one row), with the generated security.txt.

    Defaults come from the environment; a Lead edits them in the admin. Saving regenerates
    and re-signs security.txt.
    """

    contact_emails = models.TextField(default=_default_contacts,
                                      help_text="Security contact addresses, one per line, in order of preference. "
                                                "The report form's URL is always listed after them.")
    preferred_languages = models.CharField(max_length=100, default=_default_languages,
                                           help_text="Comma-separated language tags, e.g. “en, de”.")
    hiring_url = models.URLField("hiring URL", blank=True, default=_default_hiring,
                                 help_text="Optional https page about security jobs.")
    csaf_url = models.URLField("CSAF provider metadata URL", blank=True, default=_default_csaf,
                               help_text="Optional https URL of your provider-metadata.json.")
    policy_text = models.TextField(blank=True, help_text=(
        "Scope, safe harbour and anything else the policy page should say (Markdown). Leave empty for the "
        "default text. The commitments (acknowledgement and assessment times) are always added from the "
        "deadline settings."))

    securitytxt = models.TextField(blank=True, editable=False)
    securitytxt_inputs = models.CharField(max_length=64, blank=True, editable=False)
    securitytxt_generated_at = models.DateTimeField(null=True, blank=True, editable=False)
    securitytxt_expires_at = models.DateTimeField("security.txt expires", null=True, blank=True, editable=False)
    key_alert_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    rotation_alert_sent_at = models.DateTimeField(null=True, blank=True, editable=False, help_text=(
        "When the weekly reminder to rotate an old credential was last sent."))

    class Meta:
        verbose_name = "programme settings"
        verbose_name_plural = "programme settings"

    def __str__(self):
        return "Programme settings"

    @classmethod
    def load(cls) -> "Programme":
        programme, _ = cls.objects.get_or_create(pk=1)
        return programme

    @classmethod
    def claim_week(cls, field: str, now) -> bool:
        """Claim this week's team reminder recorded in ``field`` (``key_alert_sent_at``,
        ``rotation_alert_sent_at``): True for the one caller whose compare-and-set moved it,
        when none was sent in the last seven days. Call it in the transaction that queues
        the email, so two workers (or hosts) send it once, and a failure sends it again."""
        cls.load()
        stale = Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lte": now - timedelta(days=7)})
        return bool(cls.objects.filter(stale, pk=1).update(**{field: now}))

    @classmethod
    def public_contact(cls) -> str:
        """The first security contact, shown on every page."""
        try:
            row = cls.objects.filter(pk=1).values_list("contact_emails", flat=True).first()
        except DatabaseError:  # the database is down: pages that say so must still render
            return settings.SECURITY_TEAM_EMAIL
        return next((line.strip() for line in (row or "").splitlines() if line.strip()), settings.SECURITY_TEAM_EMAIL)

    @property
    def contacts(self) -> list[str]:
        return [line.strip() for line in self.contact_emails.splitlines() if line.strip()]

    @property
    def languages(self) -> list[str]:
        return [lang.strip() for lang in self.preferred_languages.split(",") if lang.strip()]

    def clean(self):
        errors = {}
        for address in self.contacts:
            try:
                validate_email(address)
            except ValidationError:
                errors["contact_emails"] = f"{address!r} is not an email address."
        if not self.contacts:
            errors["contact_emails"] = "Give at least one security contact address."
        for field in ("hiring_url", "csaf_url"):
            if getattr(self, field) and not getattr(self, field).startswith("https://"):
                errors[field] = "security.txt only lists https URLs."
        if not self.languages or any(not re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*", lang)
                                     for lang in self.languages):
            errors["preferred_languages"] = "Use language tags such as “en” or “en, pt-BR”."
        if errors:
            raise ValidationError(errors)


from disclosure.inbound.models import InboundMail  # noqa: E402,F401
from disclosure.incidents import BreachAlert, BreachAssessment  # noqa: E402,F401
from disclosure.pgp.transition import KeyTransition  # noqa: E402,F401
from disclosure.ratelimit_store import RateLimitCounter  # noqa: E402,F401
from disclosure.rotation import CredentialSighting  # noqa: E402,F401
from disclosure.webhooks import WebhookDelivery, WebhookEndpoint  # noqa: E402,F401
