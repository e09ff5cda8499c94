"""Deleting or purging a report takes its files with it, cancels its pending email and forgets
what event details quoted from the reporter."""

import time_machine
from django.test import override_settings

from disclosure import tasks
from disclosure.models import Attachment, Event, OutboundEmail, Report
from tests.base import MONDAY_10AM, BaseTestCase, is_stored, make_report, upload
from tests.mailers import DOWN


@time_machine.travel(MONDAY_10AM, tick=False)
class DeletionTests(BaseTestCase):
    def test_deleting_a_report_deletes_its_files(self):
        report, _ = make_report(files=[upload("poc.txt")])
        name = report.attachments.get().file.name
        self.assertTrue(is_stored(name))
        with self.captureOnCommitCallbacks(execute=True):
            report.delete()
        self.assertFalse(is_stored(name))
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
