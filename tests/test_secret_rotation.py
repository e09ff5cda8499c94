"""Rotating SECRET_KEY with the old one in SECRET_KEY_FALLBACKS keeps what was signed with
it valid: staff sessions and the researcher's receipt page. Status links do not depend on it."""

import os
import subprocess
import sys
import tempfile

from django.test import Client, override_settings

from disclosure.models import Report, StatusLink
from tests.base import STATUS_URL, BaseTestCase

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
