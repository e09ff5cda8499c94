"""The team's details of a report (CWE, CVE ID, asset, planned disclosure date, assignee,
legal hold) change through one Report method, from the admin and from code alike."""

from datetime import date

import time_machine
from django.core.exceptions import ValidationError

from disclosure.models import Event, Report
from tests.base import MONDAY_10AM, BaseTestCase, make_report


@time_machine.travel(MONDAY_10AM, tick=False)
class UpdateDetailsTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.report, _ = make_report()

    def test_changes_are_validated_saved_and_recorded_as_one_event(self):
        events = self.report.update_details(self.lead, {
            "cwe": "CWE-79", "cve_id": "CVE-2026-12345", "planned_disclosure_date": date(2027, 1, 31),
            "asset": "https://app.example.com/profile",  # unchanged: not recorded
        })
        self.assertEqual([e.kind for e in events], [Event.Kind.UPDATED])
        self.assertEqual(events[0].data, {"cwe": "CWE-79", "cve_id": "CVE-2026-12345",
                                          "planned_disclosure_date": "2027-01-31"})
        self.assertEqual((events[0].actor, events[0].public), (self.lead, False))
        stored = Report.objects.get()
        self.assertEqual((stored.cwe, stored.cve_id, stored.planned_disclosure_date),
                         ("CWE-79", "CVE-2026-12345", date(2027, 1, 31)))

    def test_an_invalid_value_changes_nothing(self):
        with self.assertRaises(ValidationError) as raised:
            self.report.update_details(self.lead, {"cwe": "79", "cve_id": "CVE-2026-12345"})
        self.assertIn("cwe", raised.exception.message_dict)
        self.assertEqual(Report.objects.get().cve_id, "")
        self.assertFalse(Event.objects.filter(kind=Event.Kind.UPDATED).exists())

    def test_nothing_changed_records_nothing(self):
        self.assertEqual(self.report.update_details(self.lead, {"asset": self.report.asset}), [])
        self.assertEqual(self.report.events.count(), 1)

    def test_a_new_assignee_is_recorded_as_an_assignment(self):
        [event] = self.report.update_details(self.lead, {"assignee": self.triager})
        self.assertEqual((event.kind, event.data), (Event.Kind.ASSIGNED, {"assignee": "tess"}))
        self.assertEqual(Report.objects.get().assignee, self.triager)

    def test_only_details_are_edited_this_way(self):
        with self.assertRaises(ValueError):
            self.report.update_details(self.lead, {"status": "resolved"})

    def test_the_admin_form_goes_through_the_model(self):
        self.login(self.triager)
        self.client.post(f"/admin/disclosure/report/{self.report.pk}/change/", {
            "asset": "https://app.example.com/profile", "cwe": "CWE-79", "assignee": self.lead.pk,
            "attachments-TOTAL_FORMS": 0, "attachments-INITIAL_FORMS": 0})
        # What Report.update_details records: one event per kind of change, by the editor.
        events = {event.kind: event for event in self.report.events.exclude(kind="received")}
        self.assertEqual(sorted(events), ["assigned", "updated"])
        self.assertEqual({event.actor for event in events.values()}, {self.triager})
        self.assertEqual(events["assigned"].data, {"assignee": self.lead.get_username()})
        self.assertIn("cwe", str(events["updated"].data))
        self.assertEqual(Report.objects.get().cwe, "CWE-79")
