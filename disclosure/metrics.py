"""Response-efficiency figures for staff: the basis of a public "we answer on time" figure."""

import statistics
from datetime import timedelta

from django.db.models import Count, Q

from disclosure.incidents import breach_metrics
from disclosure.models import Milestone, Report, SlaState, Status

WINDOW_DAYS = 90


OPEN_LABELS = {SlaState.MET: "Assessed on time, still open", SlaState.MET_LATE: "Assessed late, still open"}


def _median(deltas) -> timedelta | None:
    deltas = [d for d in deltas if d is not None]
    return timedelta(seconds=statistics.median(d.total_seconds() for d in deltas)) if deltas else None


def _share(total, on_time):
    return round(100 * on_time / total, 1) if total else None


def sla_metrics(now, days: int = WINDOW_DAYS) -> dict:
    """On-time shares and median times over the last ``days`` days, and open reports by state."""
    recent = Report.objects.filter(received_at__gte=now - timedelta(days=days))
    decided = recent.aggregate(
        ack_total=Count("pk", filter=Q(ack_milestone__in=[Milestone.MET, Milestone.LATE])),
        ack_on_time=Count("pk", filter=Q(ack_milestone=Milestone.MET)),
        assess_total=Count("pk", filter=Q(assess_milestone__in=[Milestone.MET, Milestone.LATE])),
        assess_on_time=Count("pk", filter=Q(assess_milestone=Milestone.MET)),
        received=Count("pk"),
    )
    ack_times = recent.filter(acknowledged_at__isnull=False).values_list("received_at", "acknowledged_at")
    assess_times = recent.filter(assessed_at__isnull=False).values_list("received_at", "assessed_at")
    filters = Report.objects.sla_state_filters(now)
    open_states = [SlaState.OVERDUE, SlaState.DUE_TODAY, SlaState.DUE_SOON, SlaState.ON_TRACK, SlaState.PAUSED,
                   SlaState.MET, SlaState.MET_LATE]
    counts = Report.objects.open().aggregate(
        **{state.value: Count("pk", filter=filters[state]) for state in open_states}
    )
    return {
        "days": days,
        "received": decided["received"],
        "ack_total": decided["ack_total"],
        "ack_on_time_pct": _share(decided["ack_total"], decided["ack_on_time"]),
        "assess_total": decided["assess_total"],
        "assess_on_time_pct": _share(decided["assess_total"], decided["assess_on_time"]),
        "ack_median": _median(b - a for a, b in ack_times),
        "assess_median": _median(b - a for a, b in assess_times),
        "open_by_state": [(OPEN_LABELS.get(state, state.label), counts[state.value], state.value)
                          for state in open_states],
    }


def dashboard(now) -> dict:
    """Everything on the staff dashboard: the SLA figures, counts by status, the overdue list,
    and the breach clocks' on-time shares."""
    counts = dict(Report.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    overdue = (Report.objects.open()
               .filter(Report.objects.sla_state_filters(now)[SlaState.OVERDUE])
               .select_related("assignee").order_by("due_at")[:100])
    return {
        **sla_metrics(now),
        "by_status": [(label, counts.get(value, 0), value) for value, label in Status.choices],
        "overdue": list(overdue),
        "breach": breach_metrics(now, WINDOW_DAYS),
    }
