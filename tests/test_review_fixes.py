"""Regression tests for defects found in code review."""

from pathlib import Path

import time_machine
from django.contrib.auth.models import Group, User
from django.test import override_settings
from django_otp.plugins.otp_totp.models import TOTPDevice

from disclosure import tasks
from disclosure.models import Attachment, Event, OutboundEmail, Report, TransitionError
from tests.base import MONDAY_10AM, BaseTestCase, make_report, upload
from tests.mailers import DOWN


@time_machine.travel(MONDAY_10AM, tick=False)
class ReviewFixesTests(BaseTestCase):
    def test_severity_can_only_be_changed_on_a_valid_report(self):
        report, _ = make_report()
        with self.assertRaisesMessage(TransitionError, "triage it as valid"):
            report.rate(self.triager, "critical")
        report.close(self.triager, "spam")
        with self.assertRaises(TransitionError):
            report.rate(self.triager, "high")
        self.assertEqual(Report.objects.get().severity, "")

    def test_a_non_numeric_report_id_in_a_decision_url_is_not_an_error(self):
        self.login(self.triager)
        response = self.client.post("/admin/disclosure/report/abc/act/acknowledge/")
        self.assertIn(response.status_code, (302, 404))  # the admin's own fallback, never a 500

    def test_retry_leaves_pending_emails_alone(self):
        with override_settings(MAILERS=DOWN):
            self.submit()
        receipt = OutboundEmail.objects.get(kind="receipt")
        self.assertEqual((receipt.state, receipt.attempts), ("pending", 1))
        self.login(self.triager)
        self.client.post("/admin/disclosure/outboundemail/", {"action": "retry_now",
                                                              "_selected_action": [receipt.pk]})
        receipt.refresh_from_db()
        self.assertEqual((receipt.state, receipt.attempts), ("pending", 1))  # not reset while in progress

    def test_leads_cannot_read_anyone_s_totp_secret(self):
        lead = User.objects.create_user("lena", "lena@example.com", "a-long-password-1", is_staff=True)
        lead.groups.add(Group.objects.get(name="Lead"))
        device = TOTPDevice.objects.create(user=self.triager, name="phone", confirmed=True)
        self.login(lead)
        page = self.client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()
        self.assertNotIn(device.key, page)

    def test_deleting_a_report_deletes_its_files(self):
        report, _ = make_report(files=[upload("poc.txt")])
        path = Path(report.attachments.get().file.path)
        with self.captureOnCommitCallbacks(execute=True):
            report.delete()
        self.assertFalse(path.exists())
        self.assertFalse(Attachment.objects.exists())

    @override_settings(RETENTION_DAYS=30)
    def test_purge_cancels_pending_email_and_forgets_quoted_details(self):
        with override_settings(MAILERS=DOWN):
            self.submit()
        report = Report.objects.get()
        report.set_credit("name", "secret handle")
        report.close(self.triager, "informative")
        with self.captureOnCommitCallbacks(execute=True):
            tasks.purge_expired(MONDAY_10AM.replace(year=2027))
        self.assertFalse(OutboundEmail.objects.filter(state="pending").exists())
        self.assertEqual(OutboundEmail.objects.get(kind="receipt").last_error, "Cancelled: the report was purged.")
        self.assertEqual(Event.objects.get(kind="credit_changed").data, {})
