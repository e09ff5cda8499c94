"""With DEBUG off, an unsafe configuration is refused at start-up by system checks."""

import re

from django.conf import settings
from django.test import SimpleTestCase, override_settings

from disclosure.checks import check_production_settings, check_queue
from tests.base import run_fresh

GOOD = {
    "DEBUG": False,
    "SECRET_KEY": "k3y-" + "a1b2c3d4e5" * 6,
    "SITE_URL": "https://security.example.com",
    "ALLOWED_HOSTS": ["security.example.com"],
    "MAILERS": {"default": {"BACKEND": "anymail.backends.postmark.EmailBackend"}},
}


def ids(messages):
    return sorted(m.id for m in messages)


class ProductionChecksTests(SimpleTestCase):
    def test_a_good_production_configuration_passes(self):
        with override_settings(**GOOD):
            self.assertEqual(check_production_settings(None), [])

    def test_the_embedded_defaults_are_refused_without_debug(self):
        console = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
        with override_settings(**{**GOOD, "SECRET_KEY": settings.INSECURE_DEV_SECRET_KEY,
                                  "SITE_URL": "http://127.0.0.1:8000", "MAILERS": console}):
            self.assertEqual(ids(check_production_settings(None)),
                             ["disclosure.E001", "disclosure.E002", "disclosure.E004"])

    def test_short_secret_key(self):
        with override_settings(**{**GOOD, "SECRET_KEY": "short"}):
            self.assertEqual(ids(check_production_settings(None)), ["disclosure.E001"])

    def test_site_url_host_must_be_allowed(self):
        with override_settings(**{**GOOD, "ALLOWED_HOSTS": ["other.example.com"]}):
            self.assertEqual(ids(check_production_settings(None)), ["disclosure.E003"])

    def test_debug_skips_the_production_checks(self):
        with override_settings(DEBUG=True, SITE_URL="http://127.0.0.1:8000"):
            self.assertEqual(check_production_settings(None), [])

    def test_queue_timing(self):
        with override_settings(Q_CLUSTER={"timeout": 60, "retry": 60, "max_attempts": 0}):
            self.assertEqual(ids(check_queue(None)), ["disclosure.E005", "disclosure.E006"])
        self.assertEqual(check_queue(None), [])


class StartupRefusalTests(SimpleTestCase):
    def run_check(self, *args, **env):
        return run_fresh(*args, **env)

    def test_manage_py_refuses_the_defaults_when_debug_is_off(self):
        result = self.run_check()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("disclosure.E001", result.stderr)

    def test_the_wsgi_application_refuses_to_start_on_the_defaults(self):
        result = self.run_check("-c", "import config.wsgi")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("refuses to start on an unsafe configuration", result.stderr)
        self.assertIn("disclosure.E001", result.stderr)

    def test_development_commands_work_with_nothing_set(self):
        result = self.run_check("manage.py", "makemigrations", "--check", "--dry-run")
        self.assertEqual(result.returncode, 0, result.stderr)
        # runserver loads the WSGI application too: in development it must start.
        self.assertEqual(self.run_check("-c", "import config.wsgi", DEBUG="true").returncode, 0)

    def test_a_typo_in_a_boolean_setting_is_refused(self):
        result = self.run_check(DEBUG="ture")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("DEBUG must be true or false", result.stderr)

    def test_production_settings_start(self):
        production = {"SECRET_KEY": GOOD["SECRET_KEY"], "SITE_URL": GOOD["SITE_URL"], "MAILER": "smtp"}
        result = self.run_check(**production)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.run_check("-c", "import config.wsgi", **production).returncode, 0)

    def test_a_missing_mailer_is_reported_once_with_the_fix(self):
        # The README's production settings, less MAILER and the provider's token.
        production = {"SECRET_KEY": GOOD["SECRET_KEY"], "SITE_URL": GOOD["SITE_URL"],
                      "SECURITY_TEAM_EMAIL": "security@example.com",
                      "DEFAULT_FROM_EMAIL": "Example security <security@example.com>"}
        result = self.run_check(**production)
        self.assertNotEqual(result.returncode, 0)
        errors = result.stderr.split("ERRORS:")[1].split("WARNINGS:")[0]
        self.assertEqual(re.findall(r"^\?: \(([\w.]+)\)", errors, flags=re.M), ["disclosure.E004"], result.stderr)
        self.assertIn("MAILER is not set", errors)
        self.assertIn("Set MAILER=smtp", errors)
