"""/healthz tells the truth: always JSON, 200 when healthy, 503 naming what fails (the
database, the cache or broker, gpg and the team key, the worker's sweep, storage)."""

import subprocess
from datetime import timedelta
from unittest import mock, skipUnless
from urllib.parse import urlsplit

import time_machine
from django.conf import settings
from django.db import OperationalError
from django.test import Client, override_settings
from django.utils import timezone
from django_q.conf import Conf

from disclosure import health, tasks
from tests.base import BaseTestCase
from tests.faults import TcpProxy, gpg_removed
from tests.pgp_keys import TeamKeyMixin


class HealthzMixin:
    def healthz(self):
        """GET /healthz as a monitor does: an error page comes back as a response."""
        response = Client(raise_request_exception=False).get("/healthz")
        self.assertEqual(response["Content-Type"], "application/json", response.content[:300])
        self.assertEqual(response["Cache-Control"], "no-store")
        return response.status_code, response.json()


class GpgHealthTests(HealthzMixin, TeamKeyMixin, BaseTestCase):
    def setUp(self):
        super().setUp()
        tasks.sweep()

    def test_healthy_when_gpg_encrypts_to_the_team_key(self):
        status, body = self.healthz()
        self.assertEqual((status, body["status"], body["gpg"]), (200, "ok", "ok"), body)
        self.assertGreater(body["team_key_expires_in_days"], 700)

    def test_gpg_removed_is_a_failing_component_found_within_a_minute(self):
        self.assertEqual(self.healthz()[0], 200)
        with gpg_removed():
            # Checked at most once a minute per process: the answer of a moment ago stands...
            self.assertEqual(self.healthz()[0], 200)
            with mock.patch("disclosure.health.time.monotonic", return_value=health.time.monotonic() + 61):
                status, body = self.healthz()
        self.assertEqual(status, 503)
        self.assertEqual((body["status"], body["gpg"], body["failing"]), ("degraded", "unusable", ["gpg"]))
        self.assertIn("gpg cannot run: PGPError", body["problems"][0])
        self.assertIn("reports cannot be stored encrypted", body["problems"][0])
        self.assertIsNone(body["team_key_expires_in_days"])

    def test_gpg_is_run_once_a_minute_not_per_request(self):
        self.healthz()
        with mock.patch("gnupg.Popen", wraps=subprocess.Popen) as started:
            for _ in range(5):
                self.healthz()
            self.assertEqual(started.call_count, 0)
            with mock.patch("disclosure.health.time.monotonic", return_value=health.time.monotonic() + 61):
                self.healthz()
            self.assertEqual(started.call_count, 1)  # one encryption to the team key

    def test_a_keyring_without_the_team_key_is_unusable(self):
        with override_settings(TEAM_KEY_FINGERPRINT="0123456789ABCDEF0123456789ABCDEF01234567"):
            status, body = self.healthz()
        self.assertEqual((status, body["gpg"], body["failing"]), (503, "unusable", ["gpg"]))
        self.assertIn("cannot encrypt to the team key", body["problems"][0])


class HealthTests(HealthzMixin, BaseTestCase):
    def test_no_team_key_is_reported_without_failing(self):
        tasks.sweep()
        status, body = self.healthz()
        self.assertEqual((status, body["gpg"]), (200, "no team key configured"), body)

    def test_the_database_unreachable_is_json_naming_it(self):
        tasks.sweep()
        with mock.patch("disclosure.health.connection.cursor", side_effect=OperationalError("connection refused")):
            status, body = self.healthz()
        self.assertEqual((status, body["status"], body["database"]), (503, "down", "unreachable"))
        self.assertEqual(body["failing"][0], "database")
        self.assertIsNone(body["emails_failed"])

    def test_a_storage_failure_is_a_problem_for_a_few_minutes(self):
        tasks.sweep()
        with self.assertLogs("disclosure.health", "ERROR") as logged:
            health.storage_failed("a report", OSError(28, "No space left on device"))
        self.assertIn("Storing a report failed", logged.output[0])
        status, body = self.healthz()
        self.assertEqual((status, body["failing"]), (503, ["storage"]))
        self.assertIsNotNone(body["last_storage_failure"])
        with time_machine.travel(timedelta(minutes=4)):
            tasks.sweep()
            self.assertEqual(self.healthz()[0], 503)
        with time_machine.travel(timedelta(minutes=6)):
            tasks.sweep()
            self.assertEqual(self.healthz(), (200, mock.ANY))

    def test_a_bug_in_the_check_still_answers_json(self):
        with mock.patch("disclosure.health._gpg_state", side_effect=RuntimeError("bug")), \
                self.assertLogs("disclosure.health", "ERROR"):
            status, body = self.healthz()
        self.assertEqual((status, body["status"], body["failing"]), (503, "down", ["healthz"]))


@skipUnless(settings.REDIS_URL, "needs Redis (REDIS_URL)")
class RedisCutTests(HealthzMixin, BaseTestCase):
    """Redis behind a TCP proxy this test cuts: the cache and the broker go away together."""

    def setUp(self):
        super().setUp()
        real = urlsplit(settings.CACHES["default"]["LOCATION"])
        self.proxy = TcpProxy((real.hostname, real.port or 6379))
        self.addCleanup(self.proxy.close)
        via_proxy = real._replace(netloc=f"127.0.0.1:{self.proxy.port}").geturl()
        self.enterContext(override_settings(CACHES={**settings.CACHES, "default": {
            **settings.CACHES["default"], "LOCATION": via_proxy}}))
        self.enterContext(mock.patch.object(Conf, "REDIS", via_proxy))
        tasks.sweep()

    def test_a_redis_cut_is_a_503_naming_cache_and_broker_then_recovers(self):
        self.assertEqual(self.healthz()[0], 200)
        self.proxy.cut()
        status, body = self.healthz()
        self.assertEqual(status, 503, body)
        self.assertEqual(body["status"], "degraded")
        self.assertEqual(body["database"], "ok")
        self.assertEqual((body["cache"], body["queue_backlog"]), ("unreachable", None))
        # With REDIS_URL, Redis is the cache, the broker and the rate-limit store.
        self.assertEqual(body["failing"], ["cache", "broker", "rate_limit_store"])
        self.assertIsNone(body["last_sweep_seconds_ago"])  # unknown, not "never"
        self.proxy.restore()
        status, body = self.healthz()
        # Cache and broker are back at once; the rate-limit store is reported for a few
        # minutes more, because requests went unlimited then.
        self.assertEqual((status, body["failing"]), (503, ["rate_limit_store"]), body)
        later = timezone.now() + timedelta(seconds=health.RATE_LIMIT_STORE_RECENT_SECONDS + 1)
        with time_machine.travel(later, tick=False):
            tasks.sweep()
            self.assertEqual(self.healthz()[0], 200)
