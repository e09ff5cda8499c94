"""Who may decide what: a legal hold (which stops retention) is a Lead's decision."""

import time_machine
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied

from disclosure.models import Event, Report
from tests.base import MONDAY_10AM, BaseTestCase, make_report


def member(name, group):
    user = User.objects.create_user(name, f"{name}@example.com", "a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def change_form(**values) -> dict:
    data = {"asset": "https://app.example.com/profile", "attachments-TOTAL_FORMS": 0, "attachments-INITIAL_FORMS": 0,
            "_continue": "1"}
    data.update(values)
    return data


@time_machine.travel(MONDAY_10AM, tick=False)
class LegalHoldTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.report, _ = make_report()
        self.page = f"/admin/disclosure/report/{self.report.pk}/change/"

    def test_a_lead_places_and_lifts_a_legal_hold(self):
        self.login(member("lena", "Lead"))
        self.assertContains(self.client.get(self.page), 'name="legal_hold"')
        self.client.post(self.page, change_form(legal_hold="on"))
        self.report.refresh_from_db()
        self.assertTrue(self.report.legal_hold)
        event = self.report.events.get(kind=Event.Kind.UPDATED)
        self.assertEqual(event.data, {"legal_hold": "yes"})
        self.client.post(self.page, change_form())
        self.report.refresh_from_db()
        self.assertFalse(self.report.legal_hold)

    def test_a_triager_sees_the_hold_but_cannot_change_it(self):
        Report.objects.filter(pk=self.report.pk).update(legal_hold=True)
        self.login(member("tina", "Triager"))
        page = self.client.get(self.page)
        self.assertNotContains(page, 'name="legal_hold"')
        self.assertContains(page, "Legal hold")
        # A crafted post neither lifts it nor places it; the triager's other edits still apply.
        self.client.post(self.page, change_form(cwe="CWE-79"))
        self.report.refresh_from_db()
        self.assertEqual((self.report.legal_hold, self.report.cwe), (True, "CWE-79"))
        Report.objects.filter(pk=self.report.pk).update(legal_hold=False)
        self.client.post(self.page, change_form(cwe="CWE-79", legal_hold="on"))
        self.report.refresh_from_db()
        self.assertFalse(self.report.legal_hold)

    def test_the_model_refuses_a_hold_from_anyone_but_a_lead(self):
        with self.assertRaises(PermissionDenied):
            self.report.update_details(member("tina", "Triager"), {"legal_hold": True})
        with self.assertRaises(PermissionDenied):
            self.report.update_details(None, {"legal_hold": True})
        self.report.refresh_from_db()
        self.assertFalse(self.report.legal_hold)
        self.report.update_details(member("lena", "Lead"), {"legal_hold": True})
        self.assertTrue(Report.objects.get().legal_hold)

    def test_a_report_on_hold_cannot_be_deleted_until_the_hold_is_lifted(self):
        other, _ = make_report(title="Not held")
        Report.objects.filter(pk=self.report.pk).update(legal_hold=True)
        self.login(member("lena", "Lead"))
        delete_page = f"/admin/disclosure/report/{self.report.pk}/delete/"
        self.assertContains(self.client.get(delete_page), "VDP-2026-0001 is on legal hold: lift the hold")
        self.client.post(delete_page, {"post": "yes"})
        bulk = self.client.post("/admin/disclosure/report/", {
            "action": "delete_selected", "_selected_action": [self.report.pk, other.pk], "post": "yes"})
        self.assertContains(bulk, "VDP-2026-0001 is on legal hold")
        self.assertEqual(Report.objects.count(), 2)  # neither went: the bulk deletion is refused as a whole
        Report.objects.filter(pk=self.report.pk).update(legal_hold=False)
        self.client.post(delete_page, {"post": "yes"})
        self.assertFalse(Report.objects.filter(pk=self.report.pk).exists())

    def test_the_lead_group_holds_the_permission(self):
        self.assertTrue(member("lena", "Lead").has_perm("disclosure.set_legal_hold"))
        self.assertFalse(member("tina", "Triager").has_perm("disclosure.set_legal_hold"))
        self.assertFalse(member("audrey", "Auditor").has_perm("disclosure.set_legal_hold"))


class InboundMailLogTests(BaseTestCase):
    def test_every_staff_role_reads_the_inbound_mail_log_and_only_leads_delete(self):
        for role, can_delete in (("Auditor", False), ("Triager", False), ("Lead", True)):
            with self.subTest(role=role):
                user = member(role.lower(), role)
                self.login(user)
                self.assertContains(self.client.get("/admin/"), "/admin/disclosure/inboundmail/")
                self.assertEqual(self.client.get("/admin/disclosure/inboundmail/").status_code, 200)
                self.assertEqual(user.has_perm("disclosure.delete_inboundmail"), can_delete)
