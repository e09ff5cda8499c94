"""Machine-readable export of reports for staff (Leads) and of one report for its reporter.

Every staff export is recorded on each exported report's timeline (``record_export``).
CSV cells that a spreadsheet would run as a formula are neutralised (``csv_cell``)."""

import csv
import io
import uuid

from django.db import transaction
from django.utils import timezone

from disclosure.incidents import breach_of
from disclosure.models import PUBLIC_STATUS_LABELS, Event, Report
from disclosure.pgp.sealing import reveal

CSV_FIELDS = [
    "tracking_id", "title", "status", "severity", "priority", "cvss_vector", "cvss_score", "cwe", "cve_id",
    "channel", "asset", "vulnerability_type", "reporter_name", "reporter_email", "assignee", "received_at",
    "acknowledged_at", "assessed_at", "resolved_at", "disclosed_at", "closed_at", "ack_due_at", "ack_milestone",
    "assess_due_at", "assess_milestone", "duplicate_of", "planned_disclosure_date",
    # The breach assessment (disclosure/incidents.py): staff exports only, never the reporter's.
    "breach_personal_data", "breach_aware_at", "breach_categories", "breach_approx_subjects",
    "breach_client_due_at", "breach_client_outcome", "breach_client_notified_at", "breach_client_reference",
    "breach_regulator_due_at", "breach_regulator_outcome", "breach_regulator_notified_at",
    "breach_regulator_reference",
]
BREACH_FIELDS = [name for name in CSV_FIELDS if name.startswith("breach_")]


def _flat(report: Report) -> dict:
    values = {name: getattr(report, name) for name in CSV_FIELDS
              if name not in ("assignee", "duplicate_of") and name not in BREACH_FIELDS}
    breach = breach_of(report)
    values.update({name: getattr(breach, name.removeprefix("breach_"), None) if breach else None
                   for name in BREACH_FIELDS})
    values["assignee"] = report.assignee.get_username() if report.assignee_id else ""
    values["duplicate_of"] = report.duplicate_of.tracking_id if report.duplicate_of_id else ""
    return values


# A cell starting with one of these is a formula to Excel, LibreOffice or Google Sheets
# (OWASP, "CSV Injection"): a reporter's title, asset, name or email address could run one.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """The value as a spreadsheet should show it: text that would start a formula gets a
    leading single quote, which spreadsheets take as "this is text"."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_rows(queryset):
    for report in queryset.select_related("assignee", "duplicate_of", "breach"):
        values = _flat(report)
        yield [csv_cell(values[name]) for name in CSV_FIELDS]


def reports_as_csv(queryset) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    writer.writerows(csv_rows(queryset))
    return out.getvalue()


def record_export(queryset, actor, export_format: str, *, now=None) -> list[Event]:
    """Record a staff export as an ``exported`` event (not shown to the reporter) on each
    report it contained: who, when, in which format, and the export it was part of (the
    same ``export_id`` on every report of one export, with their count)."""
    now = now or timezone.now()
    report_ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    data = {"format": export_format, "export_id": uuid.uuid4().hex, "count": len(report_ids)}
    with transaction.atomic():
        return Event.objects.bulk_create([
            Event(report_id=pk, kind=Event.Kind.EXPORTED, actor=actor, created_at=now, public=False, data=data)
            for pk in report_ids])


def _status_for(status: str, public_only: bool) -> str:
    """A status as its reader may see it: the reporter reads "closed" where staff read "spam"."""
    if public_only and status in PUBLIC_STATUS_LABELS:
        return PUBLIC_STATUS_LABELS[status].lower()
    return status


def _timeline(report: Report, *, public_only: bool) -> list[dict]:
    events = report.events.select_related("message", "actor").order_by("created_at", "pk")
    if public_only:
        events = events.filter(public=True)
    return [{
        "at": event.created_at, "kind": event.kind, "by": event.actor_label if not public_only else
        ("you" if event.actor_label == "reporter" else "security team" if event.actor_id else "system"),
        "status": _status_for(event.to_status, public_only),
        "message": reveal(event.message.body).text if event.message else None,
        **({"data": event.data} if not public_only else {}),
    } for event in events]


def reports_as_json(queryset) -> list[dict]:
    return [{
        **_flat(report), **{name: revealed.text for name, revealed in report.content().items()},
        "timeline": _timeline(report, public_only=False),
        "attachments": [{"name": a.display_name, "type": a.display_type, "size": a.size, "sha256": a.sha256,
                         "stored_encrypted": a.encrypted}
                        for a in report.attachments.all()],
    } for report in queryset.select_related("assignee", "duplicate_of", "breach")]


def report_for_reporter(report: Report) -> dict:
    """What the reporter sent and what they can see on their status page (no internal notes)."""
    fields = ["tracking_id", "title", "status", "description", "asset", "vulnerability_type", "steps_to_reproduce",
              "impact", "reporter_name", "reporter_email", "credit", "credit_name", "severity", "cve_id",
              "received_at", "acknowledged_at", "assessed_at", "resolved_at", "disclosed_at", "closed_at",
              "ack_due_at", "assess_due_at", "planned_disclosure_date"]
    data = {name: getattr(report, name) for name in fields}
    data["status"] = _status_for(report.status, public_only=True)
    data.update({name: revealed.text for name, revealed in report.content().items()})
    data["timeline"] = _timeline(report, public_only=True)
    data["attachments"] = [{"name": a.display_name, "type": a.display_type, "size": a.size, "sha256": a.sha256,
                            "stored_encrypted": a.encrypted}
                           for a in report.attachments.all()]
    return data
