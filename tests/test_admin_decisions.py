"""Staff take a report through its lifecycle from the admin's report page."""

import time_machine
from django.core import mail

from disclosure.models import Event, Report, Status
from tests.base import MONDAY_10AM, BaseTestCase, make_report


@time_machine.travel(MONDAY_10AM, tick=False)
class DecisionPanelTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        with self.captureOnCommitCallbacks(execute=True):
            self.report, self.token = make_report()
        mail.outbox.clear()
        self.login(self.triager)
        self.page = f"/admin/disclosure/report/{self.report.pk}/change/"

    def act(self, action, data=None):
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/admin/disclosure/report/{self.report.pk}/act/{action}/", data or {})
        self.assertRedirects(response, self.page, fetch_redirect_response=False)
        self.report.refresh_from_db()
        return self.client.get(self.page)

    def test_page_offers_only_the_decisions_the_status_allows(self):
        page = self.client.get(self.page)
        self.assertContains(page, "/act/acknowledge/")
        self.assertContains(page, "/act/triage/")
        self.assertNotContains(page, "/act/resolve/")
        self.assertContains(page, "Thank you for your report. We had already received a report")  # templated reply

    def test_new_to_resolved_with_the_reporter_following_every_step(self):
        self.act("acknowledge", {"body": "Thanks, we are on it."})
        self.assertEqual(self.report.status, Status.ACKNOWLEDGED)
        self.act("triage", {"severity": "high"})
        self.act("start_fix")
        page = self.act("resolve", {"body": "Fixed in release 4.2."})
        self.assertEqual(self.report.status, Status.RESOLVED)
        self.assertContains(page, "VDP-2026-0001 resolved.")
        subjects = [m.subject for m in self.emails_to("ada@researcher.example")]
        self.assertEqual(len(subjects), 4)
        status = self.client.get(f"/status/{self.token}/")
        self.assertContains(status, "Resolved. The vulnerability has been fixed.")
        self.assertContains(status, "Fixed in release 4.2.")
        self.assertEqual(
            list(self.report.events.filter(actor=self.triager).values_list("kind", flat=True)),
            ["acknowledged", "triaged", "fixing", "resolved"])

    def test_every_field_on_the_page_has_its_own_id(self):
        import re

        html = self.client.get(self.page).content.decode()
        ids = re.findall(r'\sid="([^"]+)"', html)
        self.assertEqual([i for i in set(ids) if ids.count(i) > 1], [])
        panel = html[html.index('<section class="triage-panel"'):html.index("</section>")]
        for target in re.findall(r'aria-describedby="([^"]+)"', panel):
            for element in target.split():
                self.assertIn(f'id="{element}"', panel)

    def test_invalid_decision_is_refused_with_a_clear_message(self):
        page = self.act("triage", {"severity": ""})
        self.assertContains(page, "Triage as valid: Severity: Choose a severity or give a CVSS vector.")
        page = self.act("resolve")
        self.assertContains(page, "VDP-2026-0001 is new; it cannot be moved to resolved.")
        self.assertEqual(self.report.status, Status.NEW)

    def test_duplicate_needs_an_existing_original(self):
        page = self.act("close", {"outcome": "duplicate", "duplicate_of": "VDP-2026-9999", "body": "dup"})
        self.assertContains(page, "There is no report VDP-2026-9999.")
        original, _ = make_report(title="First")
        self.act("close", {"outcome": "duplicate", "duplicate_of": original.tracking_id.lower(), "body": "dup"})
        self.assertEqual((self.report.status, self.report.duplicate_of), (Status.DUPLICATE, original))

    def test_messages_and_notes(self):
        self.act("send_message", {"body": "Can you retest?"})
        self.act("add_note", {"body": "Looks like CVE-2026-1234"})
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)
        status = self.client.get(f"/status/{self.token}/")
        self.assertContains(status, "Can you retest?")
        self.assertNotContains(status, "CVE-2026-1234")

    def test_assignment_is_recorded(self):
        data = {"assignee": self.lead.pk, "_continue": "1"}
        for prefix in ("attachments", "messages", "events", "emails"):
            data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
        self.client.post(self.page, data)
        self.report.refresh_from_db()
        self.assertEqual(self.report.assignee, self.lead)
        event = self.report.events.get(kind=Event.Kind.ASSIGNED)
        self.assertEqual((event.actor, event.data), (self.triager, {"assignee": "leo"}))

    def test_auditor_cannot_decide(self):
        self.login(self.auditor)
        self.assertNotContains(self.client.get(self.page), "/act/acknowledge/")
        response = self.client.post(f"/admin/disclosure/report/{self.report.pk}/act/acknowledge/")
        self.assertEqual(response.status_code, 403)
        self.assertEqual(Report.objects.get().status, Status.NEW)

    def test_get_is_not_allowed(self):
        self.assertEqual(self.client.get(f"/admin/disclosure/report/{self.report.pk}/act/acknowledge/").status_code,
                         405)

    def test_bulk_actions_call_the_same_transitions(self):
        other, _ = make_report(title="Buy cheap watches")
        self.client.post("/admin/disclosure/report/", {"action": "close_as_spam",
                                                       "_selected_action": [other.pk]})
        other.refresh_from_db()
        self.assertEqual(other.status, Status.SPAM)
        self.assertEqual(other.events.last().actor, self.triager)
        self.client.post("/admin/disclosure/report/", {"action": "assign_to_me", "_selected_action": [self.report.pk]})
        self.report.refresh_from_db()
        self.assertEqual(self.report.assignee, self.triager)

    def test_sla_filter_and_badge(self):
        listing = self.client.get("/admin/disclosure/report/?sla=on_track")
        self.assertContains(listing, "VDP-2026-0001")
        self.assertContains(listing, "On track · 03 Dec 23:59 GMT")
        self.assertNotContains(self.client.get("/admin/disclosure/report/?sla=overdue"), "VDP-2026-0001")
