"""The outbox: a failing mail provider neither fails a submission nor loses the email."""

from datetime import timedelta
from unittest import mock, skipUnless

import time_machine
from django.core import mail
from django.test import override_settings
from django_q.conf import Conf

from disclosure import emails, tasks
from disclosure.models import OutboundEmail, Report, Status, StatusLink
from tests.base import MONDAY_10AM, BaseTestCase, make_report
from tests.mailers import DOWN, WORKING


@time_machine.travel(MONDAY_10AM, tick=False)
@override_settings(EMAIL_MAX_ATTEMPTS=4, EMAIL_RETRY_SECONDS=60)
class FailingProviderTests(BaseTestCase):
    def receipt(self):
        return OutboundEmail.objects.get(kind="receipt")

    def test_submission_succeeds_and_the_failure_is_recorded(self):
        with override_settings(MAILERS=DOWN):
            response = self.submit()
        self.assertRedirects(response, "/report/received/", fetch_redirect_response=False)
        self.assertEqual(Report.objects.count(), 1)
        receipt = self.receipt()
        self.assertEqual((receipt.state, receipt.attempts), ("pending", 1))
        self.assertIn("provider down", receipt.last_error)
        self.assertEqual(receipt.next_attempt_at, MONDAY_10AM + timedelta(seconds=60))
        self.assertEqual(mail.outbox, [])

    def test_retries_back_off_and_give_up_after_the_last_attempt(self):
        with override_settings(MAILERS=DOWN):
            self.submit()
            self.assertEqual(tasks.sweep(MONDAY_10AM + timedelta(seconds=30))["emails"], 0)  # not due yet
            at = MONDAY_10AM + timedelta(seconds=60)
            self.assertEqual(tasks.sweep(at)["emails"], 2)  # receipt and team email
            self.assertEqual(self.receipt().next_attempt_at, at + timedelta(seconds=120))
            at += timedelta(seconds=120)
            tasks.sweep(at)
            at += timedelta(seconds=240)
            tasks.sweep(at)
        receipt = self.receipt()
        self.assertEqual((receipt.state, receipt.attempts), ("failed", 4))
        self.assertEqual(tasks.sweep(at + timedelta(days=1))["emails"], 0)  # given up: no more attempts

    def test_a_final_failure_is_visible_to_staff(self):
        with override_settings(MAILERS=DOWN, EMAIL_MAX_ATTEMPTS=1):
            self.submit()
        self.login(self.triager)
        page = self.client.get("/admin/disclosure/outboundemail/?state__exact=failed")
        self.assertContains(page, "[VDP-2026-0001] We received your vulnerability report")
        self.assertContains(page, "provider down")
        report_page = self.client.get(f"/admin/disclosure/report/{Report.objects.get().pk}/change/")
        self.assertContains(report_page, "Failed")

    def test_staff_can_retry_a_failed_email(self):
        with override_settings(MAILERS=DOWN, EMAIL_MAX_ATTEMPTS=1):
            self.submit()
        self.login(self.triager)
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post("/admin/disclosure/outboundemail/", {
                "action": "retry_now", "_selected_action": [self.receipt().pk]})
        self.assertEqual(self.receipt().state, "sent")
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)

    def test_recovery_delivers_a_working_link_and_keeps_the_earlier_attempts_link(self):
        # A failed attempt may still have reached the reporter (the provider took the
        # message, then the connection broke): a retry never revokes the link it carried.
        with override_settings(MAILERS=DOWN):
            self.submit()
        first_attempt = self.receipt().status_link
        with override_settings(MAILERS=WORKING):
            tasks.sweep(MONDAY_10AM + timedelta(minutes=5))
        receipt = self.receipt()
        self.assertEqual((receipt.state, receipt.attempts), ("sent", 2))
        self.assertEqual(receipt.last_error, "")
        first_attempt.refresh_from_db()
        self.assertIsNone(first_attempt.revoked_at)
        self.assertNotEqual(receipt.status_link, first_attempt)
        [message] = self.emails_to("ada@researcher.example")
        token = self.status_token_in(message.body)
        self.assertEqual(self.client.get(f"/status/{token}/").status_code, 200)
        # The confirmation screen's link and one per attempt.
        self.assertEqual(StatusLink.objects.filter(revoked_at__isnull=True).count(), 3)


@time_machine.travel(MONDAY_10AM, tick=False)
class DeliveryIsIdempotentTests(BaseTestCase):
    def test_delivering_twice_sends_once(self):
        self.submit(execute=False)
        receipt = OutboundEmail.objects.get(kind="receipt")
        self.assertTrue(emails.deliver(receipt.pk, MONDAY_10AM))
        self.assertFalse(emails.deliver(receipt.pk, MONDAY_10AM))
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)

    def test_a_second_worker_cannot_claim_an_attempt_in_progress(self):
        self.submit(execute=False)
        first = OutboundEmail.objects.get(kind="receipt")
        second = OutboundEmail.objects.get(pk=first.pk)
        self.assertTrue(first.claim(MONDAY_10AM))
        self.assertFalse(second.claim(MONDAY_10AM))

    def test_an_attempt_whose_worker_died_is_retried_after_the_lease(self):
        self.submit(execute=False)
        receipt = OutboundEmail.objects.get(kind="receipt")
        receipt.claim(MONDAY_10AM)  # the worker dies here, before sending
        self.assertEqual(tasks.sweep(MONDAY_10AM + timedelta(seconds=30))["emails"], 1)  # team email only
        self.assertEqual(tasks.sweep(MONDAY_10AM + timedelta(minutes=5))["emails"], 1)
        self.assertEqual(OutboundEmail.objects.get(pk=receipt.pk).state, "sent")

    def test_email_threads_per_report(self):
        self.submit()
        receipt, team = sorted(mail.outbox, key=lambda m: m.subject)
        self.assertEqual(receipt.extra_headers["References"], team.extra_headers["References"])
        self.assertNotEqual(receipt.extra_headers["Message-ID"], team.extra_headers["Message-ID"])
        self.assertIn("vdp-2026-0001", receipt.extra_headers["References"])


@time_machine.travel(MONDAY_10AM, tick=False)
class WrittenByTheWorkerTests(BaseTestCase):
    """A request that records an event only inserts outbox rows; the worker writes each
    message from its event when it sends it."""

    def test_a_submission_hands_its_emails_to_the_queue_as_one_task(self):
        with self.captureOnCommitCallbacks() as callbacks:
            self.client.post("/report/", self.form())
        self.assertEqual(len(callbacks), 1)
        rows = OutboundEmail.objects.order_by("kind")
        self.assertEqual([(row.kind, row.subject, row.rendered_at) for row in rows],
                         [("receipt", "", None), ("team-new-report", "", None)])
        callbacks[0]()  # the broker is synchronous in the tests: the worker runs now
        self.assertEqual(sorted(m.subject for m in mail.outbox),
                         ["[VDP-2026-0001] New report: Stored XSS in profile page",
                          "[VDP-2026-0001] We received your vulnerability report"])
        receipt = OutboundEmail.objects.get(kind="receipt")
        self.assertEqual(receipt.rendered_at, MONDAY_10AM)
        self.assertIn(OutboundEmail.STATUS_LINK_MARK, receipt.body_text)  # the sent link is not stored

    def test_what_an_email_says_is_decided_by_its_event_not_by_later_changes(self):
        self.submit()
        report = Report.objects.get()
        mail.outbox.clear()
        with self.captureOnCommitCallbacks() as acknowledged:
            report.acknowledge(self.triager, body="Thanks, looking at it.")
        report.refresh_from_db()
        with self.captureOnCommitCallbacks():
            report.close(self.triager, Status.INFORMATIVE)
        for callback in acknowledged:
            callback()  # the acknowledgement is sent after the report was closed
        [sent] = mail.outbox
        self.assertEqual(sent.subject, "[VDP-2026-0001] Your report has been acknowledged")
        self.assertIn("Status: Acknowledged", sent.body)
        self.assertIn("Thanks, looking at it.", sent.body)

    def test_the_outbox_in_the_admin_says_when_a_message_is_not_written_yet(self):
        self.submit(execute=False)
        self.login(self.triager)
        page = self.client.get("/admin/disclosure/outboundemail/")
        self.assertContains(page, "(written from its event when it is sent)", count=2)

    def test_an_email_that_cannot_be_written_is_recorded_and_retried_like_a_provider_error(self):
        self.submit(execute=False)
        team = OutboundEmail.objects.get(kind="team-new-report")
        team.kind = "no-such-kind"  # no templates: writing it fails
        team.save()
        self.assertTrue(emails.deliver(team.pk, MONDAY_10AM))
        team.refresh_from_db()
        self.assertEqual((team.state, team.attempts, team.rendered_at), ("pending", 1, None))
        self.assertIn("Could not write the email: TemplateDoesNotExist", team.last_error)
        self.assertEqual(mail.outbox, [])

    def form(self):
        from tests.base import report_data

        return report_data()


class SubmissionShapeTests(BaseTestCase):
    def test_notifying_twice_queues_nothing_twice(self):
        from disclosure.models import Event

        self.submit(execute=False)
        self.assertEqual(emails.notify(Event.objects.get(kind="received")), [])
        self.assertEqual(OutboundEmail.objects.count(), 2)

    def test_a_submission_is_a_handful_of_statements_whatever_the_queue_size(self):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        for _ in range(3):
            make_report()
        with CaptureQueriesContext(connection) as captured:
            make_report()
        statements = [q["sql"].split()[0] for q in captured]
        # The tracking number (one UPDATE ... RETURNING), then the report, its link, its
        # event, which webhook endpoints want a new report (one indexed read) and both
        # emails in one insert; the rest are savepoints.
        self.assertEqual([s for s in statements if s in ("INSERT", "UPDATE", "SELECT")],
                         ["UPDATE", "INSERT", "INSERT", "INSERT", "SELECT", "INSERT"], statements)

    def test_tracking_numbers_start_at_one_each_year_and_count_up(self):
        from disclosure.models import TrackingCounter

        self.assertEqual(TrackingCounter.next_tracking_id(2031), "VDP-2031-0001")
        self.assertEqual(TrackingCounter.next_tracking_id(2031), "VDP-2031-0002")
        self.assertEqual(TrackingCounter.next_tracking_id(2032), "VDP-2032-0001")
        self.assertEqual(TrackingCounter.objects.get(year=2031).last_number, 2)


@skipUnless(Conf.ORM, "the database is the task broker only without REDIS_URL")
class DatabaseBrokerTests(BaseTestCase):
    """With the database as the broker, an event's delivery task is written in the
    transaction that writes its emails (the suite runs the queue in sync mode: off here)."""

    def test_the_delivery_task_commits_with_the_emails_and_is_undone_with_them(self):
        from django.db import transaction
        from django_q.models import OrmQ

        with mock.patch.object(Conf, "SYNC", False):
            with self.captureOnCommitCallbacks() as after_commit:
                report, _ = make_report()
            self.assertEqual(after_commit, [])  # nothing left for after the commit
            task = OrmQ.objects.get()
            self.assertEqual(task.task["func"], "disclosure.tasks.deliver_emails")
            self.assertEqual(sorted(task.task["args"][0]),
                             sorted(report.emails.values_list("pk", flat=True)))
            with self.assertRaises(RuntimeError), transaction.atomic():
                make_report()
                raise RuntimeError("the submission failed after its emails were queued")
        self.assertEqual(OrmQ.objects.count(), 1)
        self.assertEqual(Report.objects.count(), 1)


@time_machine.travel(MONDAY_10AM, tick=False)
class EmailsAfterLaterChangesTests(BaseTestCase):
    def test_a_closing_email_sent_after_a_reopening_still_says_what_was_decided(self):
        self.submit()
        first = Report.objects.get()
        second, _ = make_report(title="The same bug again")
        mail.outbox.clear()
        with self.captureOnCommitCallbacks() as closing:
            second.close(self.triager, Status.DUPLICATE, duplicate_of=first)
        second.refresh_from_db()
        with self.captureOnCommitCallbacks():
            second.reopen(self.triager)
        for callback in closing:
            callback()  # the worker was down: the closing email goes out after the reopening
        [sent] = [m for m in mail.outbox if "closed" in m.subject]
        self.assertIn("duplicate", sent.subject.lower())
        self.assertIn(first.tracking_id, sent.body)

    def test_purged_emails_count_as_written_and_are_not_retried(self):
        with override_settings(MAILERS=DOWN, EMAIL_MAX_ATTEMPTS=1):
            self.submit()
        report = Report.objects.get()
        report.closed_at = MONDAY_10AM
        report.purge()
        rows = OutboundEmail.objects.all()
        self.assertTrue(all(row.rendered_at is not None for row in rows))
        self.login(self.lead)
        self.client.post("/admin/disclosure/outboundemail/", {
            "action": "retry_now", "_selected_action": [row.pk for row in rows]})
        self.assertEqual(set(OutboundEmail.objects.values_list("state", flat=True)), {"failed"})

    def test_a_row_written_before_the_upgrade_is_sent_as_it_is(self):
        email = emails.daily_digest(MONDAY_10AM)
        OutboundEmail.objects.filter(pk=email.pk).update(rendered_at=None)  # as the old code left it
        self.assertTrue(emails.deliver(email.pk, MONDAY_10AM))
        self.assertEqual(OutboundEmail.objects.get(pk=email.pk).state, "sent")
        self.assertEqual(mail.outbox[0].subject, email.subject)
