"""Rotation age is visible: the portal records when it first saw each credential (a one-way
fingerprint, never the secret), shows the ages in the admin and /healthz, and past the
maximum age the team gets a weekly reminder and a system check warns."""

import hashlib
import json
import unittest
from datetime import timedelta

from django.core import mail
from django.core.checks import run_checks
from django.db import connection
from django.test import TransactionTestCase, override_settings
from django.utils import timezone

from disclosure import pgp, rotation, tasks
from disclosure.models import OutboundEmail, Programme
from disclosure.rotation import CredentialSighting
from disclosure.webhooks import WebhookEndpoint
from tests.base import BaseTestCase, run_at_once, run_fresh
from tests.pgp_keys import ResearcherKeyring, TeamKeyMixin, researcher_key
from tests.test_health import HealthzMixin

KEY_ONE = "first-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH"
KEY_TWO = "second-secret-key-9876543210-zyxwvutsrqponmlkjihgfedcba-HGFEDCBA"
SMTP_PASSWORD = "hunter2"  # weak on purpose: the fingerprint must not give it away
POSTMARK_TOKEN = "pm-server-token-0123456789"
S3_SECRET = "s3-secret-access-key-abcdefghijklmnop"

CONFIGURED = dict(
    SECRET_KEY=KEY_ONE, SECRET_KEY_FALLBACKS=[], SECRET_MAX_AGE_DAYS=90, TEAM_KEY_MAX_AGE_DAYS=730,
    MAILERS={"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend",
                         "OPTIONS": {"host": "smtp.example.com", "password": SMTP_PASSWORD}}},
    ANYMAIL={"POSTMARK_SERVER_TOKEN": POSTMARK_TOKEN, "WEBHOOK_SECRET": "inbound:hook-password",
             "REQUESTS_TIMEOUT": "10"},
    INBOUND_IMAP_PASSWORD="mailbox-password", S3_BUCKET="portal-files", S3_SECRET_ACCESS_KEY=S3_SECRET,
)
SECRETS = [KEY_ONE, SMTP_PASSWORD, POSTMARK_TOKEN, "hook-password", "mailbox-password", S3_SECRET]


def days_ago(days, now=None):
    return (now or timezone.now()) - timedelta(days=days)


@override_settings(**CONFIGURED)
class CredentialAgeTests(HealthzMixin, TeamKeyMixin, BaseTestCase):
    def ages(self, now=None):
        return {age.name: age for age in rotation.ages(now or timezone.now())}

    def test_every_credential_the_portal_can_see_is_recorded_by_fingerprint_never_by_value(self):
        hook = WebhookEndpoint.objects.create(name="alerts", url="https://hooks.example.com/x", events=["report.p1"])
        now = timezone.now()
        rotation.record(now)
        rows = {row.name: row for row in CredentialSighting.objects.all()}
        self.assertEqual(set(rows), {
            "TEAM_KEY", "SECRET_KEY", "SMTP_PASSWORD", "ANYMAIL_POSTMARK_SERVER_TOKEN", "ANYMAIL_WEBHOOK_SECRET",
            "INBOUND_IMAP_PASSWORD", "S3_SECRET_ACCESS_KEY", f"webhook:{hook.pk}"})
        self.assertEqual(rows["TEAM_KEY"].fingerprint, self.fingerprint)  # public: the OpenPGP fingerprint
        stored = json.dumps(list(CredentialSighting.objects.values()), default=str)
        for secret in [*SECRETS, hook.secret]:
            self.assertNotIn(secret, stored)
        # Nor a plain hash of it, which a table of common passwords would reverse at once.
        self.assertNotIn(hashlib.sha256(SMTP_PASSWORD.encode()).hexdigest()[:32], stored)

        # Recording again changes no first sighting and adds nothing.
        later = now + timedelta(hours=1)
        rotation.record(later)
        self.assertEqual({row.name: row.first_seen for row in CredentialSighting.objects.all()},
                         {name: row.first_seen for name, row in rows.items()})
        self.assertEqual(rows[f"webhook:{hook.pk}"].first_seen, hook.created_at)  # the endpoint's own age
        self.assertEqual(set(CredentialSighting.objects.values_list("last_seen", flat=True)), {later})

    def test_a_rotated_secret_is_a_new_version_whose_age_starts_at_the_rotation(self):
        start = days_ago(120)
        rotation.record(start)
        self.assertEqual(self.ages()["SECRET_KEY"].days, 120)
        self.assertTrue(self.ages()["SECRET_KEY"].overdue)

        rotated_at = days_ago(2)
        with override_settings(SECRET_KEY=KEY_TWO, SECRET_KEY_FALLBACKS=[KEY_ONE], S3_BUCKET=""):
            rotation.record(rotated_at)
            ages = self.ages()
            self.assertEqual((ages["SECRET_KEY"].days, ages["SECRET_KEY"].overdue), (2, False))
            self.assertNotIn("S3_SECRET_ACCESS_KEY", ages)  # no bucket: not used, not shown
            self.assertEqual(rotation.fallbacks(), [rotated_at])  # the fallback stopped being SECRET_KEY then
        versions = CredentialSighting.objects.filter(name="SECRET_KEY").order_by("first_seen")
        self.assertEqual([(v.first_seen, v.retired_at) for v in versions], [(start, rotated_at), (rotated_at, None)])
        self.assertEqual(CredentialSighting.objects.get(name="S3_SECRET_ACCESS_KEY").retired_at, rotated_at)

        # Going back to a former value revives its row: it is as old as it always was.
        rotation.record(timezone.now())
        self.assertEqual(self.ages()["SECRET_KEY"].days, 120)
        self.assertIsNone(CredentialSighting.objects.get(name="SECRET_KEY", first_seen=start).retired_at)

    def test_the_team_key_is_as_old_as_its_openpgp_creation_date(self):
        rotation.record(timezone.now())
        self.assertEqual(self.ages()["TEAM_KEY"].days, 0)
        with ResearcherKeyring() as staff:  # a key made in 2020 on a staff machine, imported today
            old = researcher_key(staff, uid="Team <security@security.example.com>", expire="never",
                                 faked_time="20200101T000000!")
            armored = staff.run("--armor", "--pinentry-mode", "loopback", "--passphrase", "",
                                "--export-secret-keys", old).stdout.decode()
        pgp.import_team_key(armored)
        with override_settings(TEAM_KEY_FINGERPRINT=old):
            pgp.forget()
            rotation.record(timezone.now())  # first seen today...
            age = self.ages()["TEAM_KEY"]
            self.assertEqual(age.since.year, 2020)  # ...but made in 2020
            self.assertTrue(age.overdue)
            self.assertEqual(age.max_days, 730)
            warnings = [m for m in run_checks() if m.id == "disclosure.W005"]
        self.assertEqual(len(warnings), 1)
        self.assertIn("Team PGP key (TEAM_KEY)", warnings[0].msg)
        self.assertIn("pgp_rotate_team_key", warnings[0].hint)

    def test_an_endpoint_added_in_the_admin_has_an_age_at_once(self):
        self.login(self.lead)
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/admin/disclosure/webhookendpoint/add/", {
                "name": "alerts", "url": "https://hooks.example.com/vdp", "format": "generic",
                "events": ["report.p1"], "active": "on"})
        self.assertEqual(response.status_code, 302)
        hook = WebhookEndpoint.objects.get()
        self.assertEqual(self.ages()[f"webhook:{hook.pk}"].days, 0)  # not "not recorded yet" until the hourly pass

    def test_a_webhook_secret_is_as_old_as_its_endpoint_until_a_new_one_is_made(self):
        hook = WebhookEndpoint.objects.create(name="alerts", url="https://hooks.example.com/x", events=["report.p1"],
                                              created_at=days_ago(100))
        slack = WebhookEndpoint.objects.create(name="chat", url="https://hooks.slack.com/services/T0/B0/x",
                                               format="slack", events=["report.p1"], created_at=days_ago(10))
        rotation.record(timezone.now())
        ages = self.ages()
        self.assertEqual((ages[f"webhook:{hook.pk}"].days, ages[f"webhook:{hook.pk}"].overdue), (100, True))
        self.assertEqual(ages[f"webhook:{slack.pk}"].credential.label, "Webhook “chat” URL")  # the URL is its secret

        self.login(self.lead)
        response = self.client.post("/admin/disclosure/webhookendpoint/", {
            "action": "new_signing_secret", "_selected_action": [hook.pk]}, follow=True)
        self.assertContains(response, "1 endpoint(s) have a new signing secret")
        self.assertNotEqual(WebhookEndpoint.objects.get(pk=hook.pk).secret, hook.secret)
        self.assertEqual(self.ages()[f"webhook:{hook.pk}"].days, 0)

    def test_the_dashboard_lists_each_credential_with_its_age_and_says_rotate_now_past_the_maximum(self):
        rotation.record(days_ago(91))
        with override_settings(SECRET_KEY=KEY_TWO, SECRET_KEY_FALLBACKS=[KEY_ONE]):
            rotation.record(days_ago(91))  # a fallback not removed for months
            rotation.record(timezone.now())
            self.login(self.triager)
            page = self.client.get("/admin/metrics/").content.decode()
            history = self.client.get("/admin/disclosure/credentialsighting/?retired_at__isnull=False")
        self.assertContains(history, "SECRET_KEY")  # the former version, retired
        self.assertNotContains(history, "SMTP_PASSWORD")
        self.assertIn("<code>SMTP_PASSWORD</code>", page)
        self.assertIn("91 days", page)
        self.assertIn("Rotate now", page)
        self.assertIn("SECRET_KEY_FALLBACKS still holds 1 former key", page)
        for secret in SECRETS:
            self.assertNotIn(secret, page)

    def test_healthz_shows_ages_and_warns_without_failing_past_the_maximum(self):
        tasks.sweep()
        rotation.record(timezone.now())
        status, body = self.healthz()
        self.assertEqual((status, body["status"], body["rotation_overdue"]), (200, "ok", []), body)
        self.assertEqual(body["credential_age_days"]["SECRET_KEY"], 0)
        self.assertNotIn("warnings", body)

        CredentialSighting.objects.filter(name__in=["SMTP_PASSWORD", "SECRET_KEY"]).update(first_seen=days_ago(95))
        status, body = self.healthz()
        self.assertEqual((status, body["status"]), (200, "warning"), body)
        self.assertNotIn("failing", body)
        self.assertEqual(body["rotation_overdue"], ["SECRET_KEY", "SMTP_PASSWORD"])
        self.assertEqual(body["warnings"][0], "SECRET_KEY is 95 days old: rotate it (every 90 days)")
        self.assertEqual(body["credential_age_days"]["TEAM_KEY"], 0)
        text = json.dumps(body)
        for secret in SECRETS:
            self.assertNotIn(secret, text)
        for row in CredentialSighting.objects.exclude(name="TEAM_KEY"):
            self.assertNotIn(row.fingerprint, text)

    @override_settings(MAILERS={"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}})
    def test_the_team_is_reminded_weekly_while_a_credential_is_overdue(self):
        now = timezone.now()
        rotation.record(days_ago(100, now))
        with self.captureOnCommitCallbacks(execute=True):
            self.assertTrue(tasks.housekeeping(now)["rotation_alert"])
            self.assertFalse(tasks.housekeeping(now + timedelta(days=6))["rotation_alert"])
            self.assertTrue(rotation.send_reminder(now + timedelta(days=7)))
        first, second = self.emails_to("security@security.example.com")
        self.assertIn("Time to rotate: SECRET_KEY", first.subject)
        self.assertIn("Mailbox password (INBOUND_IMAP_PASSWORD): 100 days old (rotate every 90 days).", first.body)
        self.assertIn("move the old one into SECRET_KEY_FALLBACKS", first.body)
        for secret in SECRETS:
            self.assertNotIn(secret, first.body + first.subject + self.html_of(first))
        self.assertEqual(OutboundEmail.objects.filter(kind=OutboundEmail.Kind.TEAM_ROTATION_DUE).count(), 2)

        # Nothing overdue: no reminder, however long since the last.
        mail.outbox.clear()
        CredentialSighting.objects.update(first_seen=now)
        self.assertFalse(rotation.send_reminder(now + timedelta(days=30)))
        self.assertEqual(mail.outbox, [])
        self.assertEqual([m for m in run_checks() if m.id == "disclosure.W005"], [])

    def test_the_system_check_warns_about_each_overdue_credential(self):
        rotation.record(days_ago(91))
        warnings = {m.msg.split(" is ")[0]: m for m in run_checks() if m.id == "disclosure.W005"}
        self.assertEqual(set(warnings), {
            "Django's signing key (SECRET_KEY)", "SMTP password (SMTP_PASSWORD)",
            "Mail provider credential (ANYMAIL_POSTMARK_SERVER_TOKEN)",
            "Mail provider credential (ANYMAIL_WEBHOOK_SECRET)", "Mailbox password (INBOUND_IMAP_PASSWORD)",
            "Object storage secret key (S3_SECRET_ACCESS_KEY)"})
        self.assertIn("S3_ACCESS_KEY_ID", warnings["Object storage secret key (S3_SECRET_ACCESS_KEY)"].hint)


class RotationCheckWithoutDatabaseTests(BaseTestCase):
    def test_the_check_says_nothing_when_the_database_is_not_migrated_or_unreachable(self):
        for database in ("", "postgres://portal@127.0.0.1:1/nowhere"):  # a fresh SQLite file; nothing listening
            env = {"DEBUG": "true", "SECRET_KEY": KEY_ONE, **({"DATABASE_URL": database} if database else {})}
            result = run_fresh("manage.py", "check", **env)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertNotIn("Traceback", result.stderr)
            self.assertNotIn("W005", result.stdout + result.stderr)


@unittest.skipUnless(connection.vendor == "postgresql", "needs concurrent transactions (PostgreSQL)")
@override_settings(SECRET_KEY=KEY_ONE, SECRET_KEY_FALLBACKS=[])
class TwoWorkersRemindOnceTests(TransactionTestCase):
    def test_two_workers_at_once_record_each_credential_once_and_send_one_reminder(self):
        now = timezone.now()
        run_at_once(lambda: rotation.record(days_ago(100, now)), times=3)
        self.assertEqual(CredentialSighting.objects.filter(name="SECRET_KEY").count(), 1)
        Programme.load()
        self.assertEqual(sorted(run_at_once(lambda: rotation.send_reminder(now), times=3)), [False, False, True])
        self.assertEqual(OutboundEmail.objects.filter(kind=OutboundEmail.Kind.TEAM_ROTATION_DUE).count(), 1)
