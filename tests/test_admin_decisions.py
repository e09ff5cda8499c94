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

    def act(self, action, data=None, *, refused=None):
        """Post a decision. Done: redirected to the report page (returned). Refused: the
        page itself, with the ``refused`` status code (400 invalid, 409 not allowed now)."""
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/admin/disclosure/report/{self.report.pk}/act/{action}/", data or {})
        self.report.refresh_from_db()
        if refused:
            self.assertEqual(response.status_code, refused)
            return response
        self.assertRedirects(response, self.page, fetch_redirect_response=False)
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
        page = self.act("triage", {"severity": ""}, refused=400)
        self.assertContains(page, "Triage as valid: Severity: Choose a severity or give a CVSS vector.",
                            status_code=400)
        page = self.act("resolve", refused=409)
        self.assertContains(page, "VDP-2026-0001 is new; it cannot be moved to resolved.", status_code=409)
        self.assertEqual(self.report.status, Status.NEW)

    def test_a_refused_decision_answers_an_error_status_with_the_page_and_what_was_typed(self):
        # A script (or a browser's history) must not take a refusal for success: no redirect.
        page = self.act("triage", {"severity": "", "body": "Thanks, confirmed on staging."}, refused=400)
        self.assertContains(page, "Choose a severity or give a CVSS vector.", status_code=400)
        self.assertContains(page, "Thanks, confirmed on staging.", status_code=400)  # not lost
        self.assertContains(page, 'id="triage-heading"', status_code=400)  # the whole report page
        # The page's own form still saves to the report's page, not to the refused action.
        self.assertContains(page, f'action="{self.page}"', status_code=400)
        self.act("resolve", refused=409)
        self.assertEqual(self.report.events.count(), 1)
        self.assertEqual(len(mail.outbox), 0)

    def test_duplicate_needs_an_existing_original(self):
        page = self.act("close", {"outcome": "duplicate", "duplicate_of": "VDP-2026-9999", "body": "dup"},
                        refused=400)
        self.assertContains(page, "There is no report VDP-2026-9999.", status_code=400)
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
        self.assertContains(listing, 'title="Due Thursday 03 December 2026, 23:59 GMT">'
                                     'On track · <span class="sla-day">Thu 03 Dec</span>')
        self.assertNotContains(self.client.get("/admin/disclosure/report/?sla=overdue"), "VDP-2026-0001")

    def test_disclose_asks_for_confirmation(self):
        for action, data in [("acknowledge", {}), ("triage", {"severity": "high"}), ("resolve", {})]:
            self.act(action, data)
        panel = self.client.get(self.page)
        self.assertContains(panel, 'name="confirm"')
        self.assertContains(panel, "The vulnerability is now public")
        page = self.act("disclose", {"body": "Published as CVE-2026-1234."}, refused=400)
        self.assertContains(page, "Tick the box to confirm the vulnerability is now public.", status_code=400)
        self.assertEqual(self.report.status, Status.RESOLVED)
        self.act("disclose", {"confirm": "on", "body": "Published as CVE-2026-1234."})
        self.assertEqual(self.report.status, Status.DISCLOSED)

    def test_change_severity_shows_the_current_severity_and_vector(self):
        vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
        page = self.act("triage", {"cvss_vector": vector})
        self.assertEqual(self.report.severity, "critical")
        form = page.content.decode()
        form = form[form.index("/act/rate/"):]
        form = form[:form.index("</form>")]
        self.assertInHTML('<option value="critical" selected>Critical</option>', form)
        self.assertIn(f'value="{vector}"', form)

    def test_bulk_close_as_spam_sends_what_the_panel_sends(self):
        from disclosure.staff_forms import CloseForm

        other, _ = make_report(title="Buy cheap watches")
        panel_reply = CloseForm.for_outcome(other, Status.SPAM).initial["body"]
        self.assertTrue(panel_reply)
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post("/admin/disclosure/report/", {"action": "close_as_spam", "_selected_action": [other.pk]})
        [email] = self.emails_to("ada@researcher.example")
        self.assertIn(panel_reply, email.body)
        self.assertEqual(other.events.get(kind=Event.Kind.CLOSED).message.body, panel_reply)

    def test_decisions_appear_in_the_admins_recent_actions(self):
        from django.contrib.admin.models import LogEntry

        self.act("acknowledge")
        other, _ = make_report(title="Buy cheap watches")
        self.client.post("/admin/disclosure/report/", {"action": "close_as_spam", "_selected_action": [other.pk]})
        self.assertEqual(
            list(LogEntry.objects.order_by("pk").values_list("object_id", "change_message", "user")),
            [(str(self.report.pk), "Decision: acknowledged.", self.triager.pk),
             (str(other.pk), "Decision: closed as spam.", self.triager.pk)])
        index = self.client.get("/admin/").content.decode()
        recent = index[index.index('id="recent-actions-module"'):]
        self.assertIn(str(self.report), recent)
        self.assertIn(str(other), recent)
        self.act("resolve", refused=409)  # a refused decision is not an action taken
        self.assertEqual(LogEntry.objects.count(), 2)
