"""With DEBUG off, an unsafe configuration is refused at start-up by system checks."""

import os
import re
import subprocess
import sys
import tempfile

from django.conf import settings
from django.test import SimpleTestCase, override_settings

from disclosure.checks import check_production_settings, check_queue

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
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("DEBUG", "SECRET_KEY", "SITE_URL", "MAILER", "DATA_DIR", "DATABASE_URL", "REDIS_URL")
                 and not k.startswith("RATELIMIT_")}
        with tempfile.TemporaryDirectory() as data_dir:  # a fresh machine: no var/ folder yet
            return subprocess.run([sys.executable, *(args or ("manage.py", "check", "--deploy"))],
                                  cwd=settings.BASE_DIR,
                                  env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings",
                                       "DATA_DIR": f"{data_dir}/not-yet-created", **env},
                                  capture_output=True, text=True, timeout=120)

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

    def test_without_redis_counters_are_in_files_on_sqlite_and_in_the_database_otherwise(self):
        show = ("import django; django.setup(); from django.conf import settings; "
                "c = settings.CACHES[settings.RATELIMIT_USE_CACHE]; "
                "print(c['BACKEND'], c['LOCATION'], c.get('TIMEOUT'))")
        on_sqlite = self.run_check("-c", show, DEBUG="true")
        backend, location, timeout = on_sqlite.stdout.split()
        self.assertEqual((backend, timeout), ("disclosure.counters.FileCounterCache", "None"), on_sqlite.stderr)
        self.assertTrue(location.endswith("/not-yet-created/ratelimit"), location)
        postgres = {"DEBUG": "true", "DATABASE_URL": "postgres://u@127.0.0.1:5432/none"}
        on_postgres = self.run_check("-c", show, **postgres)
        self.assertEqual(on_postgres.stdout.split(),
                         ["django.core.cache.backends.db.DatabaseCache", "disclosure_ratelimit", "3660"],
                         on_postgres.stderr)
        longer = self.run_check("-c", show, RATELIMIT_LOST_LINK="5/2d", **postgres)
        self.assertEqual(longer.stdout.split()[2], str(2 * 86400 + 60))

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
