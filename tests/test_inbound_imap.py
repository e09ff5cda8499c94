"""The IMAP poller against a real Dovecot (started on a loopback port from a temp folder).

Skipped, with a notice, when dovecot is not installed (``.ci/run`` installs it)."""

import unittest
from datetime import timedelta

from django.db import connection
from django.test import TransactionTestCase, override_settings
from django_q.models import Schedule

from disclosure import tasks
from disclosure.inbound import imap
from disclosure.inbound.models import InboundMail
from disclosure.models import Channel, Report
from tests.base import BaseTestCase, end_of, run_at_once, start_afresh, storage_fails
from tests.inbound import DOVECOT, FRIDAY_1630, NO_DOVECOT, Dovecot, fixture, message


@unittest.skipUnless(DOVECOT, NO_DOVECOT)
class DovecotMixin:
    @classmethod
    def setUpClass(cls):
        cls.dovecot = Dovecot().start()
        cls.addClassCleanup(cls.dovecot.stop)
        cls._imap = override_settings(INBOUND_IMAP_URL=cls.dovecot.url, INBOUND_IMAP_PASSWORD=cls.dovecot.password,
                                      INBOUND_DONE_FOLDER="Processed")
        cls._imap.enable()
        cls.addClassCleanup(cls._imap.disable)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.dovecot.empty()


class ImapPollerTests(DovecotMixin, BaseTestCase):
    def poll(self):
        with self.captureOnCommitCallbacks(execute=True):
            return imap.poll()

    def test_mail_is_filed_with_its_internaldate_and_moved_after_the_commit(self):
        self.dovecot.append(fixture("plain.eml"), FRIDAY_1630)
        self.dovecot.append(fixture("auto-reply.eml"), FRIDAY_1630 + timedelta(minutes=5))
        result = self.poll()
        self.assertEqual((result["filed"], result["moved"], result["kept"]), (2, 2, 0))
        report = Report.objects.get()
        self.assertEqual((report.channel, report.received_at), (Channel.EMAIL, FRIDAY_1630))
        self.assertEqual(report.ack_due_at, end_of(2026, 12, 2))  # Friday's deadlines, whenever it was polled
        self.assertEqual(InboundMail.objects.get(outcome="auto_reply").source, "imap")
        self.assertEqual((self.dovecot.count("INBOX"), self.dovecot.count("Processed")), (0, 2))
        self.assertEqual(self.emails_to("ada@researcher.example")[0].extra_headers["In-Reply-To"],
                         "<plain-1@researcher.example>")

    def test_a_crash_between_the_commit_and_the_move_neither_loses_nor_doubles_the_message(self):
        self.dovecot.append(fixture("plain.eml"), FRIDAY_1630)
        with self.dovecot.client() as client:  # the first poll filed it and died before moving it
            client.select_folder("INBOX")
            [uid] = client.search("ALL")
            raw = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
        with self.captureOnCommitCallbacks(execute=True):
            from disclosure.inbound import file
            file.take(raw, arrived_at=FRIDAY_1630, source="imap")
        result = self.poll()
        self.assertEqual((result["filed"], result["moved"]), (1, 1))  # found done: only moved
        self.assertEqual(Report.objects.count(), 1)
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)
        self.assertEqual(self.dovecot.count("INBOX"), 0)

    def test_the_done_folder_is_made_once_even_when_two_pollers_make_it_at_once(self):
        name = "Processed-race"
        with self.dovecot.client() as first, self.dovecot.client() as second:
            self.assertFalse(first.folder_exists(name))  # both pollers find no folder ...
            imap.ensure_folder(second, name)  # ... the second makes it ...
            imap.ensure_folder(first, name)  # ... and the first's CREATE is refused, which is fine
            self.assertTrue(first.folder_exists(name))
            with self.assertRaises(first.Error):  # a refusal for any other reason still fails the poll
                imap.ensure_folder(first, "~not-allowed")
            first.delete_folder(name)

    def test_a_bad_password_is_reported_on_healthz_and_by_fetch_mail(self):
        from django.core.management import CommandError, call_command

        with override_settings(INBOUND_IMAP_PASSWORD="wrong"):
            with self.assertRaisesMessage(CommandError, "Polling failed"):
                call_command("fetch_mail")
        health = self.client.get("/healthz").json()["inbound_mail"]
        self.assertIn("LoginError", health["last_error"]["error"])
        self.assertIsNone(health["last_poll_seconds_ago"])
        self.poll()
        self.assertLess(self.client.get("/healthz").json()["inbound_mail"]["last_poll_seconds_ago"], 60)

    def test_the_schedule_exists_only_when_a_mailbox_is_configured(self):
        tasks.ensure_schedules()
        self.assertEqual(Schedule.objects.get(name=tasks.MAIL_SCHEDULE).func, "disclosure.tasks.poll_mail")
        with override_settings(INBOUND_IMAP_URL=""):
            tasks.ensure_schedules()
        self.assertFalse(Schedule.objects.filter(name=tasks.MAIL_SCHEDULE).exists())

    def test_a_message_the_poller_cannot_file_stays_in_the_mailbox(self):
        self.dovecot.append(message(message_id="<ok@x.example>"), FRIDAY_1630)
        with storage_fails():  # nothing can be recorded
            result = imap.poll()
        self.assertIn("error", result)
        self.assertEqual(self.dovecot.count("INBOX"), 1)
        self.assertEqual(self.poll()["moved"], 1)
        self.assertEqual(Report.objects.count(), 1)


@unittest.skipUnless(connection.vendor == "postgresql", "needs PostgreSQL (row locks across connections)")
class TwoPollersTests(DovecotMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        start_afresh(self)

    def test_two_pollers_at_once_file_each_message_once(self):
        for n in range(6):
            self.dovecot.append(message(sender=f"r{n}@x.example", message_id=f"<two-{n}@x.example>"),
                                FRIDAY_1630 + timedelta(minutes=n))
        results = run_at_once(imap.poll)
        self.assertTrue(all("error" not in result for result in results), results)
        self.assertEqual(Report.objects.count(), 6)
        self.assertEqual(InboundMail.objects.count(), 6)
        self.assertEqual(sorted(Report.objects.values_list("reporter_email", flat=True)),
                         [f"r{n}@x.example" for n in range(6)])
        self.assertEqual((self.dovecot.count("INBOX"), self.dovecot.count("Processed")), (0, 6))
