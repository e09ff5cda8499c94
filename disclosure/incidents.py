"""From report to incident: the breach assessment, its two notification clocks, and P1 paging.

A report can reveal a personal-data breach. A Lead or Triager records the assessment on the
report (``Report.assess_breach``): personal data affected, with the moment the team became
aware, the categories and an approximate count, or no personal data. Personal data starts two
wall-clock clocks, counted in hours that include nights, weekends and holidays (not business
days): clients are due notice ``BREACH_CLIENT_HOURS`` after awareness, the regulator
``BREACH_REGULATOR_HOURS`` after (UK GDPR Art. 33). The deadlines are stored, indexed columns;
the sweep warns at ``BREACH_WARN_AT`` (shares of the time left and hours left) and escalates at
the deadline, each step recorded once per report and clock (``BreachAlert``, unique), so a
second sweep or worker sends nothing twice, and the first sweep after downtime raises only
the latest step that came due. ``Report.record_breach_notice`` stops a clock: notified (when,
by whom, reference) or not required, with the reason (Art. 33(5) asks for it in writing).

Nothing here is ever shown to the reporter: the events are not public, and neither the
status page, the reporter's export nor their emails read this module.

Clock arithmetic is pure (``alert_times``): the caller passes the moments.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Count, Q
from django.utils import timezone

log = logging.getLogger(__name__)

CLOCKS = ("client", "regulator")
CLOCK_NAMES = {"client": "client notification", "regulator": "regulator notification"}
CLOCK_WHO = {"client": "clients", "regulator": "the regulator"}


class NoticeOutcome(models.TextChoices):
    PENDING = "pending", "Clock running"
    MET = "met", "Notified on time"
    LATE = "late", "Notified late"
    NOT_REQUIRED = "not_required", "Not required"


# --- Pure clock arithmetic ---------------------------------------------------------------------
def clock_hours(clock: str) -> int:
    return {"client": settings.BREACH_CLIENT_HOURS, "regulator": settings.BREACH_REGULATOR_HOURS}[clock]


def time_left_marks(hours: int, warn_at) -> list[timedelta]:
    """The time left at each warning, from ``BREACH_WARN_AT`` items such as "50%" (half the
    clock left) and "4h" (four hours left); marks outside the clock are dropped."""
    whole = timedelta(hours=hours)
    marks = set()
    for item in warn_at:
        left = whole * int(item[:-1]) / 100 if item.endswith("%") else timedelta(hours=int(item[:-1]))
        if timedelta(0) < left < whole:
            marks.add(left)
    return sorted(marks, reverse=True)


def alert_times(aware_at: datetime, hours: int, warn_at) -> list[datetime]:
    """Every step of a clock in order: the warnings, then the deadline (the escalation)."""
    due = aware_at + timedelta(hours=hours)
    return [*(due - left for left in time_left_marks(hours, warn_at)), due]


# --- Models -------------------------------------------------------------------------------------
class BreachAssessment(models.Model):
    """A report's breach assessment and its two clocks (one row per report, revised in place)."""

    report = models.OneToOneField("disclosure.Report", on_delete=models.CASCADE, related_name="breach")
    personal_data = models.BooleanField("personal data affected", help_text=(
        "Whether the vulnerability exposed personal data: if so, the client and regulator clocks run."))
    aware_at = models.DateTimeField("became aware", null=True, blank=True, help_text=(
        "When the team became aware of the breach: both clocks count from here."))
    categories = models.CharField("categories of personal data", max_length=500, blank=True)
    approx_subjects = models.PositiveIntegerField("approximate number of people", null=True, blank=True)
    assessed_at = models.DateTimeField(default=timezone.now)
    assessed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    client_due_at = models.DateTimeField("clients due", null=True, blank=True)
    client_outcome = models.CharField(max_length=15, choices=NoticeOutcome.choices, blank=True)
    client_notified_at = models.DateTimeField(null=True, blank=True)
    client_notified_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                           on_delete=models.SET_NULL, related_name="+")
    client_reference = models.CharField(max_length=200, blank=True)
    client_not_required_reason = models.TextField(blank=True)
    client_alert_step = models.PositiveSmallIntegerField(default=0, editable=False)
    client_next_alert_at = models.DateTimeField(null=True, blank=True, editable=False)

    regulator_due_at = models.DateTimeField("regulator due", null=True, blank=True)
    regulator_outcome = models.CharField(max_length=15, choices=NoticeOutcome.choices, blank=True)
    regulator_notified_at = models.DateTimeField(null=True, blank=True)
    regulator_notified_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                              on_delete=models.SET_NULL, related_name="+")
    regulator_reference = models.CharField(max_length=200, blank=True)
    regulator_not_required_reason = models.TextField(blank=True)
    regulator_alert_step = models.PositiveSmallIntegerField(default=0, editable=False)
    regulator_next_alert_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["client_due_at"], name="breach_client_due_open",
                         condition=Q(client_outcome="pending")),
            models.Index(fields=["regulator_due_at"], name="breach_regulator_due_open",
                         condition=Q(regulator_outcome="pending")),
            models.Index(fields=["client_next_alert_at"], name="breach_client_alert_due",
                         condition=Q(client_next_alert_at__isnull=False)),
            models.Index(fields=["regulator_next_alert_at"], name="breach_regulator_alert_due",
                         condition=Q(regulator_next_alert_at__isnull=False)),
        ]

    def __str__(self):
        return f"Breach assessment of {self.report.tracking_id}"

    def field(self, clock: str, name: str):
        return getattr(self, f"{clock}_{name}")

    def due(self, clock: str) -> datetime | None:
        return self.field(clock, "due_at")

    def outcome(self, clock: str) -> str:
        return self.field(clock, "outcome")

    @property
    def running(self) -> bool:
        return any(self.outcome(clock) == NoticeOutcome.PENDING for clock in CLOCKS)

    def clock_state(self, clock: str, now: datetime) -> str:
        """For badges: "overdue" or "running" while pending, else the outcome ("" without a clock)."""
        outcome = self.outcome(clock)
        if outcome == NoticeOutcome.PENDING:
            return "overdue" if self.due(clock) <= now else "running"
        return outcome

    def recompute(self) -> None:
        """Set each clock's deadline, outcome and next alert from the assessment and notices."""
        for clock in CLOCKS:
            if not self.personal_data:
                due, outcome, next_alert = None, "", None
            else:
                due = self.aware_at + timedelta(hours=clock_hours(clock))
                notified = self.field(clock, "notified_at")
                if self.field(clock, "not_required_reason"):
                    outcome = NoticeOutcome.NOT_REQUIRED
                elif notified:
                    outcome = NoticeOutcome.MET if notified <= due else NoticeOutcome.LATE
                else:
                    outcome = NoticeOutcome.PENDING
                steps = alert_times(self.aware_at, clock_hours(clock), settings.BREACH_WARN_AT)
                step = self.field(clock, "alert_step")
                next_alert = steps[step] if outcome == NoticeOutcome.PENDING and step < len(steps) else None
            setattr(self, f"{clock}_due_at", due)
            setattr(self, f"{clock}_outcome", outcome)
            setattr(self, f"{clock}_next_alert_at", next_alert)


class BreachAlert(models.Model):
    """One warning or escalation of one breach clock: the unique row that makes it happen once."""

    report = models.ForeignKey("disclosure.Report", on_delete=models.CASCADE, related_name="breach_alerts")
    clock = models.CharField(max_length=10, choices=[(c, CLOCK_NAMES[c]) for c in CLOCKS])
    step = models.PositiveSmallIntegerField(help_text="1 for the first warning; the last step is the escalation.")
    event = models.OneToOneField("disclosure.Event", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["report", "clock", "step"], name="breach_alert_once")]

    def __str__(self):
        return f"{self.report.tracking_id}: {self.clock} step {self.step}"


def breach_of(report) -> BreachAssessment | None:
    try:
        return report.breach
    except BreachAssessment.DoesNotExist:
        return None


# --- Transitions (called by the Report methods of the same names) -------------------------------
def _locked_breach(report):
    return BreachAssessment.objects.select_for_update().filter(report=report).first()


def assess(report, actor, *, personal_data, aware_at, categories, approx_subjects, now):
    from disclosure.models import Event, TransitionError

    categories = (categories or "").strip()
    if personal_data:
        aware_at = aware_at or now
        if aware_at > now:
            raise TransitionError("The time the team became aware cannot be later than now.")
        if not categories:
            raise TransitionError("Name the categories of personal data affected (for example: names, email "
                                  "addresses).")
        if approx_subjects is not None and approx_subjects < 0:
            raise TransitionError("The approximate number of people cannot be negative.")
    else:
        aware_at, categories, approx_subjects = None, "", None
    with transaction.atomic():
        report._lock()
        breach = _locked_breach(report)
        revised = breach is not None
        if breach is None:
            breach = BreachAssessment(report=report)
        elif not personal_data and any(breach.outcome(c) in (NoticeOutcome.MET, NoticeOutcome.LATE)
                                       for c in CLOCKS):
            raise TransitionError("Clients or the regulator were already notified of this breach; it cannot be "
                                  "changed to “no personal data”.")
        breach.personal_data, breach.aware_at = personal_data, aware_at
        breach.categories, breach.approx_subjects = categories, approx_subjects
        breach.assessed_at, breach.assessed_by = now, actor
        breach.recompute()
        breach.save()
        data = {"personal_data": personal_data, "revised": revised}
        if personal_data:
            data.update({"aware_at": aware_at.isoformat(), "categories": categories,
                         "approx_subjects": approx_subjects,
                         "client_due": breach.client_due_at.isoformat(),
                         "regulator_due": breach.regulator_due_at.isoformat()})
        return report.record(Event.Kind.BREACH_ASSESSED, actor=actor, now=now, data=data)


def record_notice(report, actor, clock, *, notified_at, reference, not_required_reason, now):
    from disclosure.models import Event, TransitionError

    if clock not in CLOCKS:
        raise TransitionError(f"{clock!r} is not a breach clock.")
    reason, reference = (not_required_reason or "").strip(), (reference or "").strip()
    if not reason:
        notified_at = notified_at or now
        if notified_at > now:
            raise TransitionError("The time of the notification cannot be later than now.")
    with transaction.atomic():
        report._lock()
        breach = _locked_breach(report)
        if breach is None or not breach.personal_data:
            raise TransitionError("Record a breach with personal data affected first.")
        if breach.outcome(clock) != NoticeOutcome.PENDING:
            done = NoticeOutcome(breach.outcome(clock)).label.lower()
            raise TransitionError(f"The {CLOCK_NAMES[clock]} is already recorded ({done}).")
        if reason:
            setattr(breach, f"{clock}_not_required_reason", reason)
        else:
            setattr(breach, f"{clock}_notified_at", notified_at)
        setattr(breach, f"{clock}_notified_by", actor)
        setattr(breach, f"{clock}_reference", reference)
        breach.recompute()
        breach.save()
        return report.record(Event.Kind.BREACH_NOTIFIED, actor=actor, now=now, data={
            "clock": clock, "outcome": breach.outcome(clock), "due": breach.due(clock).isoformat(),
            "notified_at": notified_at.isoformat() if not reason else None, "reference": reference,
            "not_required_reason": reason})


def raise_alert(report, clock, now):
    """Record the warning or escalation now due on one clock, at most once (see the module)."""
    from disclosure.models import Event

    if clock not in CLOCKS:
        raise ValueError(f"{clock!r} is not a breach clock")
    with transaction.atomic():
        report._lock()
        breach = _locked_breach(report)
        if breach is None:
            return None
        next_at = breach.field(clock, "next_alert_at")
        if next_at is None or next_at > now:
            return None
        steps = alert_times(breach.aware_at, clock_hours(clock), settings.BREACH_WARN_AT)
        step = max(number for number, at in enumerate(steps, 1) if at <= now)  # catching up: the latest one
        already = breach.field(clock, "alert_step")
        if step > already:
            setattr(breach, f"{clock}_alert_step", step)
        breach.recompute()
        breach.save()
        if step <= already:
            return None
        try:
            with transaction.atomic():
                alert = BreachAlert.objects.create(report=report, clock=clock, step=step, created_at=now)
        except IntegrityError:  # recorded by another worker meanwhile
            return None
        due = breach.due(clock)
        escalation = step == len(steps)
        event = report.record(Event.Kind.BREACH_ESCALATION if escalation else Event.Kind.BREACH_WARNING,
                              now=now, data={"clock": clock, "due": due.isoformat(), "step": step,
                                             "hours_left": round((due - now).total_seconds() / 3600, 1)})
        alert.event = event
        alert.save(update_fields=["event"])
        return event


def raise_due_breach_alerts(now, limit: int = 1000) -> int:
    """The sweep's pass over the breach clocks: every warning and escalation that has come due
    (an indexed query per clock; each report handled, and failing, on its own)."""
    from disclosure.models import Report

    raised = 0
    for clock in CLOCKS:
        due = list(BreachAssessment.objects.filter(**{f"{clock}_next_alert_at__lte": now})
                   .order_by(f"{clock}_next_alert_at").values_list("report_id", flat=True)[:limit])
        for pk in due:
            try:
                raised += Report(pk=pk).raise_breach_alert(clock, now) is not None
            except Exception:
                log.exception("Breach alert for report %s (%s) failed", pk, clock)
    return raised


# --- P1 paging ----------------------------------------------------------------------------------
def is_p1_page(event) -> bool:
    """Whether an event makes a report P1: triaged as P1, or its severity raised to P1."""
    from disclosure.models import Event

    if event.kind == Event.Kind.TRIAGED:
        return event.data.get("priority") == "P1"
    if event.kind == Event.Kind.SEVERITY_SET:
        return event.data.get("priority") == "P1" and event.data.get("from_priority") != "P1"
    return False


# --- Figures ------------------------------------------------------------------------------------
def breach_metrics(now, days: int) -> dict:
    """On-time shares of each clock for breaches assessed in the last ``days`` days, and the
    clocks running now."""
    recent = BreachAssessment.objects.filter(personal_data=True, assessed_at__gte=now - timedelta(days=days))
    figures = {}
    for clock in CLOCKS:
        counts = recent.aggregate(
            decided=Count("pk", filter=Q(**{f"{clock}_outcome__in": [NoticeOutcome.MET, NoticeOutcome.LATE]})),
            on_time=Count("pk", filter=Q(**{f"{clock}_outcome": NoticeOutcome.MET})),
            not_required=Count("pk", filter=Q(**{f"{clock}_outcome": NoticeOutcome.NOT_REQUIRED})),
            running=Count("pk", filter=Q(**{f"{clock}_outcome": NoticeOutcome.PENDING})),
        )
        counts["on_time_pct"] = round(100 * counts["on_time"] / counts["decided"], 1) if counts["decided"] else None
        counts["hours"] = clock_hours(clock)
        figures[clock] = counts
    return figures
