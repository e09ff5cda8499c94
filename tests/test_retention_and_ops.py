"""Retention (purge with legal hold), /healthz, and the production deploy check."""

import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from io import StringIO

import time_machine
from django.conf import settings
from django.core.management import call_command
from django.test import SimpleTestCase, override_settings
from django.utils import timezone

from disclosure import tasks
from disclosure.metrics import sla_metrics
from disclosure.models import Attachment, Message, OutboundEmail, Report, StatusLink
from tests.base import MONDAY_10AM, BaseTestCase, is_stored, make_report, upload

LATER = MONDAY_10AM + timedelta(days=400)


@override_settings(RETENTION_DAYS=365)
class RetentionTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        with self.captureOnCommitCallbacks(execute=True):
            self.closed, self.token = make_report(files=[upload("poc.txt")])
            self.closed.send_message(self.triager, "Thanks", now=MONDAY_10AM)
            self.closed.close(self.triager, "informative", now=MONDAY_10AM + timedelta(days=1))
            self.open_report, _ = make_report(title="Still open")
            self.held, _ = make_report(title="Held")
            self.held.close(self.triager, "spam", now=MONDAY_10AM)
            Report.objects.filter(pk=self.held.pk).update(legal_hold=True)
        self.file_name = self.closed.attachments.get().file.name
        self.assertTrue(is_stored(self.file_name))

    def test_dry_run_lists_what_would_go_and_changes_nothing(self):
        out = StringIO()
        with time_machine.travel(LATER, tick=False):
            call_command("purge_reports", "--dry-run", stdout=out)
        self.assertIn("VDP-2026-0001", out.getvalue())
        self.assertNotIn("VDP-2026-0002", out.getvalue())
        self.assertIn("1 report(s) would be purged; 1 on legal hold.", out.getvalue())
        self.assertIn("0 Inbound mail row(s) of no report would be deleted.", out.getvalue())
        self.assertTrue(Attachment.objects.exists())

    def test_purge_deletes_content_and_contact_but_keeps_the_figures(self):
        before = sla_metrics(MONDAY_10AM + timedelta(days=2))
        with time_machine.travel(MONDAY_10AM + timedelta(days=300), tick=False):
            self.assertEqual(tasks.purge_expired(), 0)  # not yet past the retention period
        with self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(tasks.purge_expired(LATER), 1)
        report = Report.objects.get(pk=self.closed.pk)
        self.assertEqual((report.reporter_name, report.reporter_email), ("", ""))
        self.assertEqual(report.description, Report.PURGED)
        self.assertIsNotNone(report.purged_at)
        self.assertFalse(Attachment.objects.filter(report=report).exists())
        self.assertFalse(is_stored(self.file_name))
        self.assertFalse(Message.objects.filter(report=report).exists())
        self.assertFalse(StatusLink.objects.filter(report=report).exists())
        for email in OutboundEmail.objects.filter(report=report):
            self.assertEqual((email.body_text, email.body_html, email.to), ("", "", ""))
        self.assertEqual(self.client.get(f"/status/{self.token}/").status_code, 404)
        # Dates, outcome and milestones stay, so the response-time figures do not change.
        self.assertEqual((report.status, report.ack_milestone, report.assess_milestone),
                         ("informative", "met", "met"))
        self.assertEqual(sla_metrics(MONDAY_10AM + timedelta(days=2)), before)
        self.assertEqual(report.events.last().kind, "purged")
        # Legal hold and open reports are untouched; a second pass does nothing.
        self.assertEqual(Report.objects.get(pk=self.held.pk).reporter_email, "ada@researcher.example")
        self.assertEqual(Report.objects.get(pk=self.open_report.pk).reporter_email, "ada@researcher.example")
        self.assertEqual(tasks.purge_expired(LATER), 0)

    @override_settings(RETENTION_DAYS=0)
    def test_zero_keeps_reports_forever(self):
        self.assertEqual(tasks.purge_expired(LATER), 0)


class HealthTests(BaseTestCase):
    def test_healthy_after_a_sweep(self):
        tasks.sweep()
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["database"], "ok")
        self.assertEqual(body["queue_backlog"], 0)
        self.assertLess(body["last_sweep_seconds_ago"], 60)
        self.assertEqual(body["rate_limit_store"], "ok")
        self.assertEqual(set(body), {"status", "database", "cache", "queue_backlog", "gpg", "last_sweep_seconds_ago",
                                     "emails_failed", "webhooks_failed", "last_storage_failure",
                                     "team_key_expires_in_days", "securitytxt_expires_in_days", "rate_limit_store",
                                     "rate_limit_store_failed_at", "file_storage", "last_backup_hours_ago",
                                     "credential_age_days", "rotation_overdue"})
        self.assertEqual(body["file_storage"], "ok")
        self.assertNotIn(settings.SECRET_KEY, response.content.decode())

    def test_degraded_when_the_worker_has_not_swept(self):
        from django.core.cache import cache

        cache.delete(tasks.LAST_SWEEP_KEY)
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertIn("the queue worker has not swept recently", response.json()["problems"])

    def test_a_worker_that_has_just_started_is_not_reported_down_before_its_first_sweep(self):
        from django.core.cache import cache

        cache.delete(tasks.LAST_SWEEP_KEY)
        cache.set(tasks.WORKER_STARTED_KEY, timezone.now().isoformat(), None)  # what `manage.py worker` records
        body = self.client.get("/healthz").json()
        self.assertNotIn("worker", body.get("failing", []))
        self.assertIsNone(body["last_sweep_seconds_ago"])
        with time_machine.travel(timezone.now() + timedelta(minutes=11)):  # started long ago, never swept
            self.assertIn("worker", self.client.get("/healthz").json()["failing"])


class DeployCheckTests(SimpleTestCase):
    def test_check_deploy_reports_nothing_with_production_settings(self):
        with tempfile.TemporaryDirectory() as data_dir:
            env = {key: value for key, value in os.environ.items()
                   if key not in ("DEBUG", "TEAM_KEY_FINGERPRINT", "DJANGO_SETTINGS_MODULE",
                                  "DJANGO_ALLOW_ASYNC_UNSAFE")}
            env.update(DJANGO_SETTINGS_MODULE="config.settings", DATA_DIR=data_dir,
                       SECRET_KEY="k3y-" + "a1b2c3d4e5" * 6, SITE_URL="https://security.example.com",
                       MAILER="smtp", SMTP_HOST="smtp.example.com",
                       SECURITY_TEAM_EMAIL="security@security.example.com",
                       HSTS_PRELOAD="true", REDIS_URL="redis://127.0.0.1:6379/0")

            def manage(*args):
                return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env,
                                      capture_output=True, text=True, timeout=120, check=False)

            key = manage("pgp_generate_team_key", "--quiet")
            self.assertEqual(key.returncode, 0, key.stderr)
            env["TEAM_KEY_FINGERPRINT"] = key.stdout.strip()
            try:
                result = manage("check", "--deploy", "--fail-level", "WARNING")
                self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
                self.assertIn("System check identified no issues", result.stdout)
            finally:
                subprocess.run(["gpgconf", "--homedir", f"{data_dir}/gnupg", "--kill", "gpg-agent"],
                               capture_output=True, check=False)
