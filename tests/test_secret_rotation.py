"""Rotating SECRET_KEY with the old one in SECRET_KEY_FALLBACKS keeps what was signed with
it valid: staff sessions, the researcher's receipt page, a report form shown before the
rotation and the reply tags of email sent before it. Status links do not depend on it."""

import os
import subprocess
import sys
import tempfile
from datetime import timedelta

from django.test import Client, override_settings

from disclosure.inbound import tags
from disclosure.models import Report, StatusLink
from tests.base import STATUS_URL, BaseTestCase, make_report, report_data
from tests.inbound import FRIDAY_1630, fixture, take

OLD = "old-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH"
NEW = "new-secret-key-9876543210-zyxwvutsrqponmlkjihgfedcba-HGFEDCBA"


class SecretKeyRotationTests(BaseTestCase):
    def test_a_staff_session_survives_a_rotation_with_the_old_key_as_fallback(self):
        kept, dropped = Client(), Client()
        with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
            for client in (kept, dropped):
                self.client = client
                self.login(self.lead)
                self.assertEqual(client.get("/admin/").status_code, 200)
        with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
            self.assertEqual(kept.get("/admin/").status_code, 200)
        # Seen once during the overlap, the session now carries the new key's hash...
        with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
            self.assertEqual(kept.get("/admin/").status_code, 200)
            # ...while one never seen during it is logged out once the fallback is removed.
            response = dropped.get("/admin/")
        self.assertEqual(response.status_code, 302)
        self.assertIn("/login/", response["Location"])

    def test_the_receipt_page_survives_a_rotation_with_the_old_key_as_fallback(self):
        with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
            self.assertEqual(self.submit().status_code, 302)
        cookies = self.client.cookies
        report = Report.objects.get()
        with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
            page = self.client.get("/report/received/")
        self.assertContains(page, report.tracking_id)
        token = STATUS_URL.search(page.content.decode()).group(1)
        with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
            self.assertEqual(StatusLink.find_report(token), report)  # a random token, hashed: no key involved
            self.assertContains(self.client.get(f"/status/{token}/"), report.tracking_id)
            stale = Client()
            stale.cookies = cookies
            self.assertEqual(stale.get("/report/received/").status_code, 404)  # without the fallback: expired


    @override_settings(MIN_FORM_SECONDS=0)
    def test_a_report_form_shown_before_the_rotation_is_accepted_during_the_overlap(self):
        with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
            shown = [self.blank_form_values(), self.blank_form_values()]
        with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
            self.assertEqual(self.submit({**report_data(), **shown[0]}).status_code, 302)
        with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
            self.assertContains(self.submit({**report_data(), **shown[1]}), "please reload the page", status_code=400)
        self.assertEqual(Report.objects.count(), 1)


@override_settings(SECURITY_TEAM_EMAIL="security@security.example.com", SITE_URL="https://security.example.com",
                   ALLOWED_HOSTS=["security.example.com", "testserver"])
class ReplyTagRotationTests(BaseTestCase):
    def reply_to_report(self, address, number=1):
        """File a reply that only its tagged address can tie to a report (no In-Reply-To of ours)."""
        raw = fixture("reply.eml", to=address, in_reply_to="<unknown@client.example>").replace(
            b"<reply-1@", f"<reply-{number}@".encode())
        with self.captureOnCommitCallbacks(execute=True):
            row = take(raw, arrived_at=FRIDAY_1630 + timedelta(days=3))
        return row.report if row.outcome == "reply" else None

    def test_a_reply_tag_from_before_the_rotation_finds_its_report_while_the_old_key_is_a_fallback(self):
        with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
            with self.captureOnCommitCallbacks(execute=True):
                report, _ = make_report()
            [receipt] = self.emails_to("ada@researcher.example")
            before = receipt.extra_headers["Reply-To"]
        with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
            with self.captureOnCommitCallbacks(execute=True):
                report.acknowledge(self.triager)  # the next email carries the new key's tag
            after = self.emails_to("ada@researcher.example")[-1].extra_headers["Reply-To"]
            self.assertNotEqual(before, after)
            self.assertEqual(self.reply_to_report(before), report)
            self.assertEqual(tags.report_for_addresses([after]), report)
        with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
            self.assertEqual(tags.report_for_addresses([after]), report)
            # The former key gone, its tags are no longer trusted: that reply would be new mail.
            self.assertIsNone(tags.report_for_addresses([before]))
        with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
            self.assertIsNone(self.reply_to_report(before, number=2))
        self.assertEqual(Report.objects.count(), 2)


class SecretKeyFallbacksSettingTests(BaseTestCase):
    def read_setting(self, **env):
        """SECRET_KEY_FALLBACKS as the settings module reads it from a fresh environment."""
        environment = {key: value for key, value in os.environ.items() if not key.startswith("SECRET_KEY")}
        environment.update(env)
        code = "from django.conf import settings; print(repr(settings.SECRET_KEY_FALLBACKS))"
        result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], env={
            **environment, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true"},
            capture_output=True, text=True, timeout=60, check=True)
        return eval(result.stdout.strip())

    def test_fallbacks_are_read_comma_separated_or_from_a_file(self):
        self.assertEqual(self.read_setting(), [])
        self.assertEqual(self.read_setting(SECRET_KEY_FALLBACKS=f"{OLD}, {NEW}"), [OLD, NEW])
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as handle:
            handle.write(f"{OLD}\n{NEW}\n")
            handle.flush()
            self.assertEqual(self.read_setting(SECRET_KEY_FALLBACKS_FILE=handle.name), [OLD, NEW])
