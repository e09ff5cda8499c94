"""The Inbound mail log over time: a message that failed to file is filed again by staff,
and the log's rows (with their raw messages) leave under the retention policy."""

from datetime import timedelta

from django.contrib.admin.models import LogEntry
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import override_settings

from disclosure import tasks
from disclosure.inbound import file
from disclosure.inbound.models import InboundMail
from disclosure.models import Report, Status
from tests.base import BaseTestCase
from tests.inbound import FRIDAY_1630, fixture, message, take

LOG = "/admin/disclosure/inboundmail/"


class FileAgainTests(BaseTestCase):
    def failed_row(self) -> tuple[InboundMail, bytes]:
        """A message whose stored copy could not be read for all its attempts (the store lost
        it for a while), failed and shown to staff."""
        raw = fixture("plain.eml")
        row, _ = file.receive(raw, arrived_at=FRIDAY_1630, source=InboundMail.Source.WEBHOOK)
        default_storage.delete(row.raw.name)
        for _ in range(file.MAX_ATTEMPTS):
            file.file_safely(row.pk)
        row.refresh_from_db()
        self.assertEqual((row.state, row.attempts), (InboundMail.State.FAILED, file.MAX_ATTEMPTS))
        self.assertFalse(Report.objects.exists())
        return row, raw

    def test_staff_file_a_failed_message_again_once_its_cause_is_fixed(self):
        row, raw = self.failed_row()
        self.assertEqual(default_storage.save(row.raw.name, ContentFile(raw)), row.raw.name)  # the store is back
        self.login(self.triager)
        self.assertContains(self.client.get(LOG), "File the selected failed messages again")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(LOG, {"action": "file_again", "_selected_action": [row.pk]}, follow=True)
        self.assertContains(response, "1 failed message(s) queued to be filed again.")
        row.refresh_from_db()
        report = Report.objects.get()
        self.assertEqual((row.state, row.outcome, row.report, row.last_error),
                         (InboundMail.State.DONE, "report", report, ""))
        self.assertEqual(report.received_at, FRIDAY_1630)  # the clocks still start when it arrived
        self.assertEqual(LogEntry.objects.get(object_id=str(row.pk)).change_message, "Filed again after failing.")

    def test_a_filed_message_is_left_as_it_is(self):
        with self.captureOnCommitCallbacks(execute=True):
            row = take(fixture("plain.eml"))
        self.login(self.triager)
        response = self.client.post(LOG, {"action": "file_again", "_selected_action": [row.pk]}, follow=True)
        self.assertContains(response, "0 failed message(s) queued to be filed again. 1 not failed, left as they are.")
        self.assertEqual(Report.objects.count(), 1)

    def test_an_auditor_cannot_file_again(self):
        row, _ = self.failed_row()
        self.login(self.auditor)
        self.assertNotContains(self.client.get(LOG), "File the selected failed messages again")
        self.client.post(LOG, {"action": "file_again", "_selected_action": [row.pk]})
        row.refresh_from_db()
        self.assertEqual(row.state, InboundMail.State.FAILED)


@override_settings(RETENTION_DAYS=30)
class InboundRetentionTests(BaseTestCase):
    def test_a_purged_report_takes_its_inbound_mail_with_it(self):
        with self.captureOnCommitCallbacks(execute=True):
            row = take(fixture("plain.eml"))
        report = Report.objects.get()
        Report.objects.filter(pk=report.pk).update(status=Status.INFORMATIVE, closed_at=FRIDAY_1630)
        with self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(tasks.purge_expired(FRIDAY_1630 + timedelta(days=31)), 1)
        self.assertFalse(InboundMail.objects.filter(pk=row.pk).exists())  # the sender's address and subject too
        self.assertFalse(InboundMail.objects.filter(sender__contains="researcher.example").exists())

    def test_ignored_mail_leaves_the_log_after_the_retention_period(self):
        with self.captureOnCommitCallbacks(execute=True):
            old = take(fixture("auto-reply.eml"))
            recent = take(message(headers=["Precedence: bulk"], message_id="<recent@x.example>"),
                          arrived_at=FRIDAY_1630 + timedelta(days=20))
            waiting, _ = file.receive(message(message_id="<waiting@x.example>"), arrived_at=FRIDAY_1630,
                                      source=InboundMail.Source.WEBHOOK)
        self.assertTrue(old.raw.name and default_storage.exists(old.raw.name))  # kept (sealed) while in the log
        with self.captureOnCommitCallbacks(execute=True):
            tasks.purge_expired(FRIDAY_1630 + timedelta(days=31))
        self.assertEqual(set(InboundMail.objects.values_list("pk", flat=True)), {recent.pk, waiting.pk})
        self.assertFalse(default_storage.exists(old.raw.name))

    @override_settings(RETENTION_DAYS=0)
    def test_no_retention_keeps_everything(self):
        with self.captureOnCommitCallbacks(execute=True):
            take(fixture("auto-reply.eml"))
        tasks.purge_expired(FRIDAY_1630 + timedelta(days=3650))
        self.assertEqual(InboundMail.objects.count(), 1)
