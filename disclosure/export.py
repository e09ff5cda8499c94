"""Machine-readable export of reports for staff (Leads) and of one report for its reporter."""

from disclosure.models import Report
from disclosure.pgp.sealing import reveal

CSV_FIELDS = [
    "tracking_id", "title", "status", "severity", "priority", "cvss_vector", "cvss_score", "cwe", "cve_id",
    "channel", "asset", "vulnerability_type", "reporter_name", "reporter_email", "assignee", "received_at",
    "acknowledged_at", "assessed_at", "resolved_at", "disclosed_at", "closed_at", "ack_due_at", "ack_milestone",
    "assess_due_at", "assess_milestone", "duplicate_of", "planned_disclosure_date",
]


def _flat(report: Report) -> dict:
    values = {name: getattr(report, name) for name in CSV_FIELDS
              if name not in ("assignee", "duplicate_of")}
    values["assignee"] = report.assignee.get_username() if report.assignee_id else ""
    values["duplicate_of"] = report.duplicate_of.tracking_id if report.duplicate_of_id else ""
    return values


def csv_rows(queryset):
    for report in queryset.select_related("assignee", "duplicate_of"):
        values = _flat(report)
        yield ["" if values[name] is None else values[name] for name in CSV_FIELDS]


def _timeline(report: Report, *, public_only: bool) -> list[dict]:
    events = report.events.select_related("message", "actor").order_by("created_at", "pk")
    if public_only:
        events = events.filter(public=True)
    return [{
        "at": event.created_at, "kind": event.kind, "by": event.actor_label if not public_only else
        ("you" if event.actor_label == "reporter" else "security team" if event.actor_id else "system"),
        "status": event.to_status, "message": reveal(event.message.body).text if event.message else None,
        **({"data": event.data} if not public_only else {}),
    } for event in events]


def reports_as_json(queryset) -> list[dict]:
    return [{
        **_flat(report), **{name: revealed.text for name, revealed in report.content().items()},
        "timeline": _timeline(report, public_only=False),
        "attachments": [{"name": a.original_name, "size": a.size, "sha256": a.sha256}
                        for a in report.attachments.all()],
    } for report in queryset.select_related("assignee", "duplicate_of")]


def report_for_reporter(report: Report) -> dict:
    """What the reporter sent and what they can see on their status page (no internal notes)."""
    fields = ["tracking_id", "title", "status", "description", "asset", "vulnerability_type", "steps_to_reproduce",
              "impact", "reporter_name", "reporter_email", "credit", "credit_name", "severity", "cve_id",
              "received_at", "acknowledged_at", "assessed_at", "resolved_at", "disclosed_at", "closed_at",
              "ack_due_at", "assess_due_at", "planned_disclosure_date"]
    data = {name: getattr(report, name) for name in fields}
    data.update({name: revealed.text for name, revealed in report.content().items()})
    data["timeline"] = _timeline(report, public_only=True)
    data["attachments"] = [{"name": a.original_name, "size": a.size, "sha256": a.sha256}
                           for a in report.attachments.all()]
    return data
