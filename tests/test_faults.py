"""Faults never lose a report or an email: gpg removed, a worker killed between the mail
server accepting a message and the row being marked sent, the upload folder or the
database failing under a submission, and a worker started while the database or Redis is
down. (/healthz under faults: tests/test_health.py.)"""

import email
import email.policy
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from unittest import mock, skipUnless

import time_machine
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test import SimpleTestCase, TransactionTestCase, override_settings
from django.utils import timezone
from django.utils.html import escape
from django_q.conf import Conf

from disclosure import emails, tasks
from disclosure.models import Attachment, Message, OutboundEmail, Report, TrackingCounter
from tests.base import MONDAY_10AM, BaseTestCase, make_report, report_data, storage_fails, stored_names, upload
from tests.faults import (
    OutputLines,
    TcpProxy,
    free_port,
    gpg_removed,
    redis_server,
    start_group,
    stop_group,
    table_missing,
)
from tests.mailers import ACCEPTED_THEN_DIED, WorkerKilled
from tests.pgp_keys import TEAM_EMAIL, TeamKeyMixin

# --- 1. An email never retries forever without showing as failed -------------------------------
LEASE = timedelta(seconds=settings.Q_CLUSTER["timeout"] * 2)


@time_machine.travel(MONDAY_10AM, tick=False)
@override_settings(EMAIL_MAX_ATTEMPTS=3, EMAIL_RETRY_SECONDS=60)
class EmailWithoutGpgTests(TeamKeyMixin, BaseTestCase):
    def test_each_attempt_is_recorded_and_the_email_ends_failed_where_staff_and_monitors_see_it(self):
        self.submit(execute=False)  # stored with gpg; the worker runs after gpg went away
        at = MONDAY_10AM
        with gpg_removed():
            for _ in range(6):
                tasks.sweep(at)
                at += timedelta(minutes=10)
        for row in OutboundEmail.objects.all():
            self.assertEqual((row.state, row.attempts), ("failed", 3), row.kind)
            self.assertIn("PGPError", row.last_error)
            self.assertIn("gpg", row.last_error)
        self.assertEqual(mail.outbox, [])
        with time_machine.travel(at, tick=False):
            health = self.client.get("/healthz").json()
        self.assertEqual(health["emails_failed"], 2)

    def test_an_unexpected_error_is_recorded_with_its_type(self):
        self.submit(execute=False)
        receipt = OutboundEmail.objects.get(kind="receipt")
        # The reporter's key was damaged in the database: gpg cannot read it when encrypting.
        Report.objects.update(reporter_key="-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbroken\n"
                                           "-----END PGP PUBLIC KEY BLOCK-----\n")
        with self.assertLogs("disclosure.emails", "ERROR"):
            self.assertTrue(emails.deliver(receipt.pk, MONDAY_10AM))
        receipt.refresh_from_db()
        self.assertEqual((receipt.state, receipt.attempts), ("pending", 1))
        self.assertEqual(receipt.last_error, "PGPError: the reporter's key could not be read")
        self.assertEqual(receipt.next_attempt_at, MONDAY_10AM + timedelta(seconds=60))


@time_machine.travel(MONDAY_10AM, tick=False)
@override_settings(EMAIL_MAX_ATTEMPTS=3)
class CrashLoopTests(BaseTestCase):
    def test_a_row_whose_attempts_all_died_unrecorded_is_failed_with_the_reason_not_retried(self):
        self.submit(execute=False)
        receipt = OutboundEmail.objects.get(kind="receipt")
        at = MONDAY_10AM
        for _ in range(3):  # each attempt's worker dies between claim and mark
            self.assertTrue(OutboundEmail.objects.get(pk=receipt.pk).claim(at))
            at += LEASE + timedelta(seconds=1)
        with self.assertLogs("disclosure.models", "ERROR"):
            tasks.sweep(at)
        receipt.refresh_from_db()
        self.assertEqual((receipt.state, receipt.attempts), ("failed", 3))
        self.assertIn("Gave up after 3 attempts", receipt.last_error)
        self.assertEqual(self.emails_to("ada@researcher.example"), [])
        self.assertFalse(OutboundEmail.objects.get(pk=receipt.pk).claim(at + timedelta(days=1)))

    def test_a_last_attempt_still_in_progress_is_left_alone(self):
        self.submit(execute=False)
        receipt = OutboundEmail.objects.get(kind="receipt")
        OutboundEmail.objects.filter(pk=receipt.pk).update(attempts=3, next_attempt_at=MONDAY_10AM + LEASE)
        tasks.sweep(MONDAY_10AM + timedelta(seconds=30))
        self.assertEqual(OutboundEmail.objects.get(pk=receipt.pk).state, "pending")


# --- 2. A retried email never kills the link the reporter already has --------------------------
@time_machine.travel(MONDAY_10AM, tick=False)
class RetriedEmailLinkTests(BaseTestCase):
    def test_both_copies_links_work_when_a_worker_died_after_the_mail_server_accepted_the_first(self):
        self.submit(execute=False)
        receipt = OutboundEmail.objects.get(kind="receipt")
        with override_settings(MAILERS=ACCEPTED_THEN_DIED), self.assertRaises(WorkerKilled):
            emails.deliver(receipt.pk, MONDAY_10AM)  # accepted by the mail server, then killed
        self.assertEqual(OutboundEmail.objects.get(pk=receipt.pk).state, "pending")
        tasks.sweep(MONDAY_10AM + LEASE + timedelta(seconds=1))  # at least once: a second copy
        self.assertEqual(OutboundEmail.objects.get(pk=receipt.pk).state, "sent")
        first, second = self.emails_to("ada@researcher.example")
        tokens = [self.status_token_in(first.body), self.status_token_in(second.body)]
        self.assertNotEqual(*tokens)
        for token in tokens:
            self.assertEqual(self.client.get(f"/status/{token}/").status_code, 200)

    def test_the_lost_link_flow_still_revokes_every_link(self):
        self.submit()
        [receipt] = self.emails_to("ada@researcher.example")
        token = self.status_token_in(receipt.body)
        Report.reissue_links("ada@researcher.example")
        self.assertEqual(self.client.get(f"/status/{token}/").status_code, 404)


@skipUnless(connection.vendor == "postgresql", "a real worker needs the test database: PostgreSQL runs only")
class KilledWorkerTests(TransactionTestCase):
    """A real worker with the Redis broker, killed (SIGKILL) after the mail server accepted a
    receipt and before the row was marked sent: the task is gone from Redis, the sweep
    sends a second copy, and the first copy's link still works."""

    def test_the_first_copys_link_still_works_after_the_retry(self):
        if shutil.which("redis-server") is None:
            self.skipTest("redis-server is not installed")
        work = Path(self.enterContext(tempfile.TemporaryDirectory()))
        redis_port = free_port()
        broker_url = f"redis://127.0.0.1:{redis_port}/0"
        redis = redis_server(redis_port)
        self.addCleanup(stop_group, redis)
        db = connection.settings_dict
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "TEAM_KEY_FINGERPRINT")}
        env.update(DJANGO_SETTINGS_MODULE="tests.worker_settings", DATA_DIR=str(work), PYTHONUNBUFFERED="1",
                   DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
                                f"{db['NAME']}",
                   REDIS_URL=broker_url, MAIL_FILE_PATH=str(work / "mail"), SECRET_KEY=settings.SECRET_KEY,
                   SITE_URL=settings.SITE_URL, Q_WORKERS="1")
        worker = start_group([sys.executable, "manage.py", "worker", "--first-delay", "0.2", "--max-delay", "0.5"],
                             cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        self.addCleanup(stop_group, worker)
        output = OutputLines(worker.stdout)
        self.assertTrue(output.wait_for("running.", timeout=15), output)

        # The portal keeps one broker per process (emails._broker): start this test's afresh, on
        # the worker's Redis, and leave none behind for later tests.
        emails._broker.cache_clear()
        self.addCleanup(emails._broker.cache_clear)
        with mock.patch.object(Conf, "REDIS", broker_url), mock.patch.object(Conf, "SYNC", False), \
                mock.patch.object(Conf, "CLUSTER_NAME", "disclosure"):  # the worker's queue (not the run's)
            make_report(now=timezone.now())  # its receipt is queued, as on a real host, for the real worker
        receipt = OutboundEmail.objects.get(kind="receipt")
        self.assertTrue(output.wait_for("reincarnated", timeout=15), output)  # the killed worker's successor
        stop_group(worker)
        [accepted] = list((work / "mail").iterdir())
        receipt.refresh_from_db()
        self.assertEqual((receipt.state, receipt.attempts, receipt.last_error), ("pending", 1, ""))

        tasks.sweep(timezone.now() + LEASE + timedelta(seconds=1))  # at least once: the second copy
        receipt.refresh_from_db()
        self.assertEqual(receipt.state, "sent")
        first_copy = email.message_from_bytes(accepted.read_bytes().split(b"\n" + b"-" * 79)[0],
                                              policy=email.policy.default)
        [second_copy] = [message for message in mail.outbox if receipt.to in message.to]
        tokens = {BaseTestCase.status_token_in(first_copy.get_body(("plain",)).get_content()),
                  BaseTestCase.status_token_in(second_copy.body)}
        self.assertEqual(len(tokens), 2)
        for token in tokens:
            self.assertEqual(self.client.get(f"/status/{token}/").status_code, 200)


# --- 5. A submission that cannot be stored comes back with everything typed ---------------------
class NotStoredMixin:
    def assertNothingStored(self, reports=0, messages=None, attachments=0):
        self.assertEqual(Report.objects.count(), reports)
        self.assertEqual(Attachment.objects.count(), attachments)
        if messages is not None:
            self.assertEqual(Message.objects.count(), messages)
        self.assertEqual(stored_names(), [])

    def assertFormComesBack(self, response, data):
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response["Retry-After"], "300")
        self.assertContains(response, "Your report could not be saved", status_code=503)
        self.assertContains(response, "nothing was saved", status_code=503)
        self.assertContains(response, "please choose your files again", status_code=503)
        for name in ("title", "asset", "vulnerability_type", "reporter_name", "reporter_email", "credit_name"):
            self.assertContains(response, f'value="{escape(data[name])}"', status_code=503, msg_prefix=name)
        for name in ("description", "steps_to_reproduce", "impact"):
            self.assertContains(response, f"{escape(data[name])}</textarea>", status_code=503, msg_prefix=name)
        self.assertContains(response, 'value="name" id="id_credit_1" checked', status_code=503)  # the credit choice

    def assertTeamAlerted(self, what):
        health = self.client.get("/healthz")
        self.assertEqual(health.status_code, 503)
        self.assertIn("storage", health.json()["failing"])
        self.assertTrue(any(f"storing {what} failed" in problem for problem in health.json()["problems"]))


class SubmissionWithoutGpgTests(NotStoredMixin, TeamKeyMixin, BaseTestCase):
    def test_the_form_comes_back_with_what_was_typed_and_nothing_is_half_saved(self):
        data = report_data()
        with gpg_removed(), self.assertLogs("disclosure.health", "ERROR") as logged:
            response = self.submit(data, files=[upload(), upload("second.txt", b"more")])
        self.assertFormComesBack(response, data)
        self.assertContains(response, f'<a href="mailto:{TEAM_EMAIL}">{TEAM_EMAIL}</a>', status_code=503)
        self.assertNothingStored()
        self.assertIn("PGPError", logged.output[0])
        self.assertTeamAlerted("a report")

    def test_sending_the_same_form_again_once_gpg_is_back_stores_it_once(self):
        data = {**report_data(), **{k: v for k, v in self.blank_form_values().items() if k != "shown_at"}}
        with gpg_removed(), self.assertLogs("disclosure.health", "ERROR"):
            self.submit(data)
        self.submit(data)
        self.submit(data)  # a double click after the retry
        self.assertEqual(Report.objects.count(), 1)


class SubmissionStorageFailureTests(NotStoredMixin, BaseTestCase):
    def test_file_storage_failing(self):
        data = report_data()
        with storage_fails(), self.assertLogs("disclosure.health", "ERROR"):
            response = self.submit(data, files=[upload()])
        self.assertFormComesBack(response, data)
        self.assertNothingStored()
        self.assertTeamAlerted("a report")

    def test_the_database_failing_midway_keeps_no_report_and_no_file(self):
        data = report_data()
        with table_missing(TrackingCounter), self.assertLogs("disclosure.health", "ERROR"):
            response = self.submit(data, files=[upload()])  # the tracking number cannot be written
        self.assertFormComesBack(response, data)
        self.assertNothingStored()
        self.assertTeamAlerted("a report")

    def test_the_problem_leaves_healthz_after_a_few_minutes(self):
        with table_missing(TrackingCounter), self.assertLogs("disclosure.health", "ERROR"):
            self.submit()
        tasks.sweep()
        self.assertEqual(self.client.get("/healthz").status_code, 503)
        with time_machine.travel(timedelta(minutes=6)):
            tasks.sweep()
            self.assertEqual(self.client.get("/healthz").status_code, 200)


@skipUnless(connection.vendor == "postgresql", "a lock timeout of PostgreSQL's own")
class SubmissionOnPostgresqlTests(NotStoredMixin, BaseTestCase):
    def test_a_real_database_error_keeps_the_form(self):
        """Another session holds the tracking-number table; PostgreSQL gives up waiting."""
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        holder = psycopg.connect(**params)
        self.addCleanup(holder.close)
        holder.execute(f"LOCK TABLE {TrackingCounter._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        data = report_data()
        with self.assertLogs("disclosure.health", "ERROR") as logged:
            response = self.submit(data, files=[upload()])
        holder.rollback()
        self.assertFormComesBack(response, data)
        self.assertIn("lock timeout", logged.output[0])
        self.assertNothingStored()


class FollowUpNotStoredTests(NotStoredMixin, TeamKeyMixin, BaseTestCase):
    def setUp(self):
        super().setUp()
        self.report, self.token = make_report()

    def test_without_gpg_the_message_comes_back_as_typed(self):
        with gpg_removed(), self.assertLogs("disclosure.health", "ERROR"), \
                self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/status/{self.token}/", {
                "body": "Here is the <b>missing</b> step.", "attachments": [upload()]})
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response["Cache-Control"], "no-store, private")
        self.assertContains(response, "Your message could not be saved", status_code=503)
        self.assertContains(response, "Here is the &lt;b&gt;missing&lt;/b&gt; step.</textarea>", status_code=503)
        self.assertContains(response, "please choose your files again", status_code=503)
        self.assertContains(response, TEAM_EMAIL, status_code=503)
        self.assertNothingStored(reports=1, messages=0)
        self.assertEqual(self.report.events.filter(kind="reporter_message").count(), 0)
        self.assertTeamAlerted("a reporter's message")
        # Sent again once gpg is back, it is stored.
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/status/{self.token}/", {"body": "Here is the missing step."})
        self.assertRedirects(response, f"/status/{self.token}/")

    def test_file_storage_failing_shows_the_status_page_with_the_message(self):
        with storage_fails(), self.assertLogs("disclosure.health", "ERROR"):
            response = self.client.post(f"/status/{self.token}/", {"body": "Logs attached.",
                                                                   "attachments": [upload()]})
        self.assertContains(response, "Your message could not be saved", status_code=503)
        self.assertContains(response, self.report.tracking_id, status_code=503)
        self.assertContains(response, "Timeline", status_code=503)  # the whole status page
        self.assertContains(response, "Logs attached.</textarea>", status_code=503)
        self.assertNothingStored(reports=1, messages=0)


# --- 5b. A worker started during an outage waits for it to end -----------------------------------
class WorkerStartsAfterAnOutageTests(SimpleTestCase):
    """``manage.py worker`` (the Procfile's worker) as a real process: started while the
    database (PostgreSQL runs only) and Redis are unreachable, it waits, then starts the
    cluster once they answer."""

    def test_it_waits_with_backoff_and_starts_the_cluster_when_they_return(self):
        if shutil.which("redis-server") is None:
            self.skipTest("redis-server is not installed")
        on_postgresql = connection.vendor == "postgresql"
        redis_port, database_port = free_port(), free_port()
        env = {key: value for key, value in os.environ.items()
               if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "TEAM_KEY_FINGERPRINT")}
        data_dir = self.enterContext(tempfile.TemporaryDirectory())
        env.update(DJANGO_SETTINGS_MODULE="config.settings", DATA_DIR=data_dir, LOG_LEVEL="INFO",
                   PYTHONUNBUFFERED="1", REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", Q_WORKERS="1")
        if on_postgresql:
            db = connection.settings_dict
            env["DATABASE_URL"] = f"postgres://{db['USER']}@127.0.0.1:{database_port}/{db['NAME']}"
        worker = start_group([sys.executable, "manage.py", "worker", "--first-delay", "0.2", "--max-delay", "0.5"],
                             cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        self.addCleanup(stop_group, worker)
        output = OutputLines(worker.stdout)

        if on_postgresql:
            self.assertTrue(output.wait_for("Waiting for the database", times=3, timeout=15), output)
            self.assertIsNone(worker.poll(), output)
            proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)), port=database_port)
            self.addCleanup(proxy.close)
        self.assertTrue(output.wait_for("Waiting for Redis", times=3, timeout=15), output)
        self.assertIsNone(worker.poll(), output)
        self.assertIn("next attempt in 0.5 s", str(output))  # the backoff grew to its cap
        redis = redis_server(redis_port)
        self.addCleanup(stop_group, redis)
        self.assertTrue(output.wait_for("starting the queue cluster", timeout=10), output)
        self.assertTrue(output.wait_for("running.", timeout=10), output)  # django-q2: "Q Cluster ... running."
        self.assertIsNone(worker.poll(), output)
        stop_group(worker)  # while Redis is still up, so the cluster stops cleanly
        self.assertTrue(output.wait_for("has stopped", timeout=5), output)
