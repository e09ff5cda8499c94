"""The data model: a report, its status links, events, messages, attachments and outbox.

Every change of state goes through one ``Report`` method that checks the current status,
updates fields and deadlines, and records an ``Event``. Events drive notifications
(``disclosure.emails.notify``), which are queued as ``OutboundEmail`` rows in the same
transaction and delivered by the task queue after commit.
"""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from disclosure import sla, tokens
from disclosure.uploads import removed_on_failure, safe_filename


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


class Severity(models.TextChoices):
    NONE = "none", "None"
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Milestone(models.TextChoices):
    PENDING = "pending", "Pending"
    MET = "met", "Met on time"
    LATE = "late", "Met late"


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
        are serialised and never share a number.
        """
        if not cls.objects.filter(year=year).update(last_number=F("last_number") + 1):
            try:
                with transaction.atomic():
                    cls.objects.create(year=year, last_number=1)
            except IntegrityError:
                cls.objects.filter(year=year).update(last_number=F("last_number") + 1)
        number = cls.objects.get(year=year).last_number
        return f"{settings.TRACKING_ID_PREFIX}-{year}-{number:04d}"


class ReportQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=OPEN_STATUSES)


class Report(models.Model):
    tracking_id = models.CharField(max_length=40, unique=True, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW, db_index=True)

    # What the reporter told us. Field names are the public form contract.
    title = models.CharField(max_length=200)
    description = models.TextField(help_text="Markdown as written by the reporter.")
    asset = models.CharField("affected asset", max_length=500, blank=True,
                             help_text="Affected URL, product or component, as given by the reporter.")
    vulnerability_type = models.CharField(max_length=200, blank=True,
                                          help_text="Vulnerability class or CWE as given by the reporter.")
    steps_to_reproduce = models.TextField(blank=True)
    impact = models.TextField(blank=True)
    reporter_name = models.CharField(max_length=200, blank=True)
    reporter_email = models.EmailField(blank=True, help_text="Empty when the reporter stays anonymous.")
    credit = models.CharField(max_length=10, choices=Credit.choices, default=Credit.NONE,
                              help_text="Whether the reporter wants public credit once the report is resolved.")
    credit_name = models.CharField(max_length=200, blank=True, help_text="Name or handle to credit.")

    # Assessment by the team.
    severity = models.CharField(max_length=10, choices=Severity.choices, blank=True)
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
    assess_due_at = models.DateTimeField("assessment due", null=True, blank=True)
    ack_milestone = models.CharField(max_length=10, choices=Milestone.choices, default=Milestone.PENDING)
    assess_milestone = models.CharField(max_length=10, choices=Milestone.choices, default=Milestone.PENDING)

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
        ]
        permissions = [("export_report", "Can export reports")]

    def __str__(self):
        return f"{self.tracking_id}: {self.title}"

    # --- Reading ------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def plain_status(self) -> str:
        return PLAIN_STATUS[Status(self.status)]

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
        with removed_on_failure() as stored, transaction.atomic():
            if key_hash:
                existing = cls.objects.select_for_update().filter(submission_key_hash=key_hash).first()
                if existing is not None:
                    return existing, StatusLink.mint(existing, now=now)
            report = cls(**fields, submission_key_hash=key_hash, received_at=now)
            report.tracking_id = TrackingCounter.next_tracking_id(sla.local_date(now).year)
            report.recompute_deadlines(now)
            report.full_clean(exclude=["submission_key_hash"])
            report.save()
            for upload in files:
                stored.append(Attachment.store(report, upload, now=now))
            token = StatusLink.mint(report, now=now)
            report.record(Event.Kind.RECEIVED, to_status=Status.NEW, now=now, public=True)
        return report, token

    # --- Deadlines ----------------------------------------------------------------------
    def recompute_deadlines(self, now: datetime) -> None:
        """Set the stored deadlines and milestone outcomes from the current state.

        The one place deadlines are decided. Acknowledgement is due a number of business
        days after receipt; assessment likewise, extended by the business days the report
        spent waiting for the reporter (``needs more info`` pauses that clock).
        """
        self.ack_due_at = sla.business_deadline(self.received_at, settings.SLA_ACKNOWLEDGE_DAYS)
        if self.acknowledged_at:
            self.ack_milestone = Milestone.MET if self.acknowledged_at <= self.ack_due_at else Milestone.LATE
        elif not self.is_open:
            self.ack_milestone = Milestone.MET if (self.closed_at or now) <= self.ack_due_at else Milestone.LATE
        else:
            self.ack_milestone = Milestone.PENDING

        paused = self.paused_business_days(now)
        due = sla.business_deadline(self.received_at, settings.SLA_ASSESS_DAYS)
        self.assess_due_at = sla.extend_deadline(due, paused) if paused else due
        if self.assessed_at:
            self.assess_milestone = Milestone.MET if self.assessed_at <= self.assess_due_at else Milestone.LATE
        else:
            self.assess_milestone = Milestone.PENDING

    def paused_business_days(self, now: datetime) -> int:
        """Business days spent waiting for the reporter before the assessment was made."""
        if not self.pk:
            return 0
        total = 0
        pauses = self.events.filter(kind__in=[Event.Kind.INFO_REQUESTED, Event.Kind.INFO_PROVIDED])
        started = None
        for kind, at in pauses.order_by("created_at", "pk").values_list("kind", "created_at"):
            if self.assessed_at and at > self.assessed_at:
                break
            if kind == Event.Kind.INFO_REQUESTED and started is None:
                started = at
            elif kind == Event.Kind.INFO_PROVIDED and started is not None:
                total += sla.business_days_between(started, at)
                started = None
        return total

    # --- Changing state -----------------------------------------------------------------
    def record(self, kind, *, actor=None, now=None, public=False, message=None, to_status="",
               from_status="", data=None):
        """Append one event to the audit trail; its notifications are queued with it."""
        from disclosure import emails

        event = Event.objects.create(
            report=self, kind=kind, actor=actor, created_at=now or timezone.now(), public=public,
            message=message, from_status=from_status, to_status=to_status, data=data or {},
        )
        emails.notify(event)
        return event

    def _move(self, to_status, kind, *, allowed_from, actor, now, public=True, message=None, data=None,
              update=()):
        if self.status not in allowed_from:
            raise TransitionError(
                f"{self.tracking_id} is {self.get_status_display().lower()}; "
                f"it cannot be moved to {Status(to_status).label.lower()}."
            )
        from_status = self.status
        self.status = to_status
        self.recompute_deadlines(now)
        self.save(update_fields=["status", "ack_due_at", "assess_due_at", "ack_milestone",
                                 "assess_milestone", "updated_at", *update])
        return self.record(kind, actor=actor, now=now, public=public, message=message,
                           from_status=from_status, to_status=to_status, data=data)

    def _lock(self):
        """Take the row lock and reload, so concurrent actions see each other's result."""
        list(Report.objects.select_for_update().filter(pk=self.pk).values_list("pk"))
        self.refresh_from_db()

    def add_reporter_message(self, body: str, files=(), *, now=None):
        """A follow-up from the reporter; answers a pending question and resumes the clock."""
        now = now or timezone.now()
        with removed_on_failure() as stored, transaction.atomic():
            self._lock()
            message = Message.objects.create(report=self, kind=Message.Kind.FROM_REPORTER, body=body,
                                             created_at=now)
            for upload in files:
                stored.append(Attachment.store(self, upload, now=now, message=message))
            if self.status != Status.NEEDS_INFO:
                return self.record(Event.Kind.REPORTER_MESSAGE, now=now, public=True, message=message)
            back_to = self.status_before_info or Status.ACKNOWLEDGED
            self.status_before_info = ""
            self.info_requested_at = None
            return self._move(back_to, Event.Kind.INFO_PROVIDED, allowed_from={Status.NEEDS_INFO},
                              actor=None, now=now, message=message,
                              update=("status_before_info", "info_requested_at"))


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
    def find_report(cls, token: str):
        """The report an active token opens, or None. Compared in constant time."""
        if not token or len(token) > 100:
            return None
        link = (cls.objects.filter(token_hash=tokens.token_hash(token), revoked_at__isnull=True)
                .select_related("report").first())
        if link is None or not tokens.hashes_match(link.token_hash, token):
            return None
        return link.report

    @staticmethod
    def url(token: str) -> str:
        return settings.SITE_URL + reverse("status", args=[token])


class Message(models.Model):
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
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return self.original_name

    @classmethod
    def store(cls, report, upload, *, now=None, message=None):
        import hashlib

        digest = hashlib.sha256()
        for chunk in upload.chunks():
            digest.update(chunk)
        upload.seek(0)
        attachment = cls(report=report, message=message, original_name=safe_filename(upload.name),
                         declared_type=(upload.content_type or "")[:100], size=upload.size,
                         sha256=digest.hexdigest(), created_at=now or timezone.now())
        attachment.file.save("upload", upload, save=False)
        try:
            attachment.save()
        except BaseException:
            attachment.file.delete(save=False)
            raise
        return attachment


class Event(models.Model):
    """One change to a report: the audit trail and what drives notifications."""

    class Kind(models.TextChoices):
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
        ACK_WARNING = "ack_warning", "Acknowledgement due soon"
        ACK_ESCALATION = "ack_escalation", "Acknowledgement overdue"
        ASSESS_WARNING = "assess_warning", "Assessment due soon"
        ASSESS_ESCALATION = "assess_escalation", "Assessment overdue"
        LINKS_REISSUED = "links_reissued", "Status links reissued"

    ONCE_PER_REPORT = [Kind.ACK_WARNING, Kind.ACK_ESCALATION, Kind.ASSESS_WARNING, Kind.ASSESS_ESCALATION]

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
            models.UniqueConstraint(fields=["report", "kind"], condition=Q(kind__in=[
                "ack_warning", "ack_escalation", "assess_warning", "assess_escalation"]),
                name="event_sla_milestone_once"),
        ]

    def __str__(self):
        return f"{self.report.tracking_id}: {self.get_kind_display()}"

    @property
    def actor_label(self) -> str:
        if self.actor_id:
            return self.actor.get_username()
        if self.kind in (self.Kind.RECEIVED, self.Kind.REPORTER_MESSAGE, self.Kind.INFO_PROVIDED,
                         self.Kind.WITHDRAWN):
            return "reporter"
        return "system"


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

    kind = models.CharField(max_length=40)
    report = models.ForeignKey(Report, null=True, blank=True, on_delete=models.CASCADE, related_name="emails")
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.CASCADE, related_name="emails")
    to = models.EmailField()
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
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
        return f"{self.subject} -> {self.to} ({self.state})"

    def claim(self, now) -> bool:
        """Take this attempt (compare-and-set); False when another worker has it or it is done.

        Claiming pushes ``next_attempt_at`` past the task timeout, so an attempt whose worker
        died is retried by the sweep rather than lost.
        """
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
        OutboundEmail.objects.filter(pk=self.pk).exclude(state=self.State.SENT).update(
            state=self.State.PENDING, attempts=0, next_attempt_at=now)
