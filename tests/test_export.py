"""A Lead's export of reports: spreadsheet-safe CSV, and every export recorded on each report."""

import csv
import io
import json

import time_machine
from django.contrib.auth.models import Group, User

from disclosure.models import Event
from tests.base import MONDAY_10AM, BaseTestCase, make_report

HOSTILE = {
    "title": '=HYPERLINK("http://evil","click")',
    "asset": "+cmd|' /C calc'!A0",
    "reporter_name": "@SUM(1+1)",
    "reporter_email": "=1+1@evil.example",
    "vulnerability_type": "-2+3",
}


@time_machine.travel(MONDAY_10AM, tick=False)
class ExportTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.lead = User.objects.create_user("lena", "lena@example.com", "a-long-password-1", is_staff=True)
        self.lead.groups.add(Group.objects.get(name="Lead"))
        self.login(self.lead)

    def export(self, action, reports):
        response = self.client.post("/admin/disclosure/report/",
                                    {"action": action, "_selected_action": [r.pk for r in reports]})
        self.assertEqual(response.status_code, 200)
        return response

    def csv_rows(self, reports):
        content = self.export("export_csv", reports).content.decode()
        rows = list(csv.DictReader(io.StringIO(content)))
        return {row["tracking_id"]: row for row in rows}

    def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(self):
        report, _ = make_report(**HOSTILE)
        row = self.csv_rows([report])[report.tracking_id]
        for field, value in HOSTILE.items():
            self.assertEqual(row[field], "'" + value, field)

    def test_tab_and_carriage_return_starts_are_neutralised_too(self):
        report, _ = make_report(title="\t=1+1", asset="\r=1+1")
        row = self.csv_rows([report])[report.tracking_id]
        self.assertEqual((row["title"], row["asset"]), ("'\t=1+1", "'\r=1+1"))

    def test_ordinary_values_are_left_as_they_are(self):
        report, _ = make_report(title="SQLi in search (a=1)", asset="https://app.example.com")
        row = self.csv_rows([report])[report.tracking_id]
        self.assertEqual((row["title"], row["asset"], row["reporter_email"], row["received_at"]),
                         ("SQLi in search (a=1)", "https://app.example.com", "ada@researcher.example",
                          "2026-11-30 10:00:00+00:00"))

    def test_each_export_is_recorded_on_every_report_it_contained(self):
        first, _ = make_report()
        second, _ = make_report(title="Second")
        untouched, _ = make_report(title="Not exported")
        self.csv_rows([first, second])
        exported = json.loads(self.export("export_json", [first]).content)
        # The JSON timeline holds the earlier CSV export, and is written before its own record.
        self.assertEqual([e["data"].get("format") for e in exported[0]["timeline"] if e["kind"] == "exported"],
                         ["csv"])
        events = Event.objects.filter(kind=Event.Kind.EXPORTED).order_by("pk")
        self.assertEqual([(e.report, e.actor, e.public, e.data["format"], e.data["count"]) for e in events],
                         [(first, self.lead, False, "csv", 2), (second, self.lead, False, "csv", 2),
                          (first, self.lead, False, "json", 1)])
        csv_export, json_export = events[0].data["export_id"], events[2].data["export_id"]
        self.assertEqual(events[1].data["export_id"], csv_export)  # the same export
        self.assertNotEqual(csv_export, json_export)
        self.assertFalse(untouched.events.filter(kind=Event.Kind.EXPORTED).exists())

        page = self.client.get(f"/admin/disclosure/report/{first.pk}/change/")
        self.assertContains(page, "Exported")
        self.assertContains(page, "CSV, with 1 other report")

    def test_the_reporter_never_sees_an_export(self):
        report, token = make_report()
        self.export("export_csv", [report])
        page = self.client.get(f"/status/{token}/")
        self.assertNotContains(page, "Exported")
        own = json.loads(self.client.get(f"/status/{token}/export.json").content)
        self.assertNotIn("exported", [e["kind"] for e in own["timeline"]])
