"""Rate limits: what each limit refuses, the one store of counters (Redis, or the counter
table without it) counting atomically, and limits opening for researchers when that store
cannot be reached (staff login aside)."""

import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from unittest import skipUnless
from urllib.parse import urlsplit

import time_machine
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection
from django.test import RequestFactory, SimpleTestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from disclosure import ratelimits, tasks
from disclosure.models import Report
from disclosure.ratelimit_store import CounterTableCache, RateLimitCounter
from disclosure.ratelimits import client_ip
from tests.base import MONDAY_10AM, BaseTestCase, fresh_env, make_report, report_data, run_at_once, run_fresh, upload

TABLE_STORE = {"BACKEND": "disclosure.ratelimit_store.CounterTableCache"}


def rates(**overrides):
    return {**settings.RATE_LIMITS, **overrides}


def store_at(config: dict):
    """Settings that keep the rate-limit counters in a store of ``config`` of its own."""
    return override_settings(CACHES={**settings.CACHES, "ratelimit-under-test": config},
                             RATELIMIT_USE_CACHE="ratelimit-under-test")


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


class RateLimitTests(BaseTestCase):
    @override_settings(RATE_LIMITS=rates(submit="2/h"))
    def test_submissions_get_429_with_retry_after_after_the_limit(self):
        self.assertEqual(self.submit().status_code, 302)
        self.assertEqual(self.submit().status_code, 302)
        blocked = self.submit()
        self.assertEqual(blocked.status_code, 429)
        self.assertGreater(int(blocked["Retry-After"]), 0)
        self.assertLessEqual(int(blocked["Retry-After"]), 3600)
        self.assertContains(blocked, "Too many requests", status_code=429)
        self.assertEqual(Report.objects.count(), 2)
        self.assertEqual(self.submit(REMOTE_ADDR="198.51.100.7").status_code, 302)  # another client

    @override_settings(RATE_LIMITS=rates(submit="1/h", form_post="4/h"))
    def test_forms_sent_back_with_errors_do_not_use_up_the_submission_limit(self):
        for _ in range(2):
            self.assertEqual(self.submit(report_data(title="")).status_code, 400)
        self.assertEqual(self.submit().status_code, 302)  # the one report allowed
        self.assertEqual(self.submit().status_code, 429)
        # Over the submission limit, the address cannot post the form at all.
        self.assertEqual(self.submit(report_data(title="")).status_code, 429)
        self.assertEqual(Report.objects.count(), 1)

    @override_settings(RATE_LIMITS=rates(submit="5/h", form_post="3/h"))
    def test_forms_sent_back_with_errors_are_limited_and_then_every_post_is_refused(self):
        for _ in range(3):
            self.assertEqual(self.submit(report_data(title="")).status_code, 400)
        self.assertEqual(self.submit(report_data(title="")).status_code, 429)
        refused = self.submit()  # a valid form too, before it is read
        self.assertEqual(refused.status_code, 429)
        self.assertFalse(Report.objects.exists())
        self.assertEqual(self.submit(REMOTE_ADDR="198.51.100.7").status_code, 302)  # another client
        self.assertEqual(self.client.get("/report/").status_code, 200)  # reading the form is not limited

    @override_settings(RATE_LIMITS=rates(status="3/m"))
    def test_status_link_misses_are_limited_and_reading_a_held_link_is_not(self):
        _, token = make_report()
        for _ in range(5):
            self.assertEqual(self.client.get(f"/status/{token}/").status_code, 200)
        for _ in range(3):
            self.assertEqual(self.client.get("/status/" + "A" * 43 + "/").status_code, 404)
        # Over the limit: refused whatever the token, so a guesser cannot tell a hit.
        blocked = self.client.get("/status/" + "B" * 43 + "/")
        self.assertEqual(blocked.status_code, 429)
        self.assertIn("Retry-After", blocked)
        for path in ("", "export.json", "files/1/"):
            self.assertEqual(self.client.get(f"/status/{token}/{path}").status_code, 429, path)
        self.assertEqual(self.client.post(f"/status/{token}/credit/", {"credit": "none"}).status_code, 429)
        self.assertEqual(self.client.get(f"/status/{token}/", REMOTE_ADDR="198.51.100.9").status_code, 200)

    @override_settings(RATE_LIMITS=rates(submit="3/h"))
    def test_a_count_lasts_its_whole_window_not_the_caches_default_five_minutes(self):
        from django_ratelimit.core import _get_window

        with time_machine.travel(MONDAY_10AM, tick=False):
            edge = _get_window("127.0.0.1", 3600)  # where this client's hourly windows begin
        with time_machine.travel(edge + 1, tick=False) as clock:
            for _ in range(3):
                self.assertEqual(self.submit().status_code, 302)
            clock.shift(timedelta(minutes=40))
            self.assertEqual(self.submit().status_code, 429)
            clock.shift(timedelta(minutes=20))  # the next window
            self.assertEqual(self.submit().status_code, 302)

    def test_a_block_recorded_by_another_process_applies_here_at_once(self):
        _, token = make_report()
        with time_machine.travel(MONDAY_10AM, tick=False):
            self.assertEqual(self.client.get(f"/status/{token}/").status_code, 200)
            request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1")
            ratelimits._cache().set(ratelimits._blocked_key("status", request), int(MONDAY_10AM.timestamp()) + 600,
                                    600)
            blocked = self.client.get(f"/status/{token}/")
        self.assertEqual(blocked.status_code, 429)
        self.assertEqual(int(blocked["Retry-After"]), 600)

    @override_settings(RATE_LIMITS=rates(status="3/m"))
    def test_downloads_and_exports_by_a_held_link_count(self):
        report, token = make_report(files=[upload()])
        file_id = report.attachments.get().pk
        self.assertEqual(self.client.get(f"/status/{token}/files/{file_id}/").status_code, 200)
        self.assertEqual(self.client.get(f"/status/{token}/export.json").status_code, 200)
        self.assertEqual(self.client.get(f"/status/{token}/files/{file_id}/").status_code, 200)
        self.assertEqual(self.client.get(f"/status/{token}/export.json").status_code, 429)
        self.assertEqual(self.client.get(f"/status/{token}/").status_code, 429)

    @override_settings(RATE_LIMITS=rates(login="3/15m"))
    def test_staff_login(self):
        for _ in range(3):
            self.assertEqual(self.client.post("/admin/login/", {"username": "tess", "password": "wrong"}).status_code,
                             200)
        self.assertEqual(self.client.post("/admin/login/", {"username": "tess", "password": "x"}).status_code, 429)

    @override_settings(RATE_LIMITS=rates(message="1/h"))
    def test_follow_up_messages(self):
        _, token = make_report()
        self.assertEqual(self.client.post(f"/status/{token}/", {"body": "one"}).status_code, 302)
        self.assertEqual(self.client.post(f"/status/{token}/", {"body": "two"}).status_code, 429)

    @override_settings(RATE_LIMITS=rates(lost_link="2/h"))
    def test_lost_link_requests(self):
        for email in ("a@example.com", "b@example.com"):
            with self.captureOnCommitCallbacks(execute=True):
                self.assertEqual(self.client.post("/status/", {"email": email}).status_code, 302)
        self.assertEqual(self.client.post("/status/", {"email": "c@example.com"}).status_code, 429)

    def test_client_address_comes_from_remote_addr_unless_proxies_are_trusted(self):
        request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5")
        self.assertEqual(client_ip("g", request), "10.0.0.2")
        with override_settings(TRUSTED_PROXY_COUNT=1):
            self.assertEqual(client_ip("g", request), "203.0.113.5")
        with override_settings(TRUSTED_PROXY_COUNT=3):
            self.assertEqual(client_ip("g", request), "10.0.0.2")  # fewer hops than proxies: forged


class StoreConfigurationTests(SimpleTestCase):
    """Which store a deployment gets, and that django-ratelimit's own checks accept it."""

    SHOW = ("import django; django.setup(); from django.conf import settings; "
            "from django_ratelimit.checks import check_caches; "
            "print(settings.RATELIMIT_USE_CACHE, settings.CACHES[settings.RATELIMIT_USE_CACHE]['BACKEND'], "
            "sorted(m.id for m in check_caches(None)), sorted(settings.CACHES))")

    def test_without_redis_the_counter_table_on_sqlite_and_postgresql_alike(self):
        for database in ("", "postgres://u@127.0.0.1:5432/none"):
            with self.subTest(database or "sqlite"):
                shown = run_fresh("-c", self.SHOW, DEBUG="true", **({"DATABASE_URL": database} if database else {}))
                self.assertEqual(shown.stdout.split(maxsplit=2),
                                 ["ratelimit", "disclosure.ratelimit_store.CounterTableCache",
                                  "['django_ratelimit.W001'] ['default', 'ratelimit']\n"], shown.stderr)

    def test_with_redis_djangos_own_redis_cache(self):
        shown = run_fresh("-c", self.SHOW, DEBUG="true", REDIS_URL="redis://127.0.0.1:6379/0")
        self.assertEqual(shown.stdout.split(maxsplit=2),
                         ["default", "django.core.cache.backends.redis.RedisCache",
                          "['django_ratelimit.W001'] ['default']\n"], shown.stderr)

    def test_the_production_check_passes_on_the_counter_table(self):
        production = {"SECRET_KEY": "k3y-" + "a1b2c3d4e5" * 6, "SITE_URL": "https://security.example.com",
                      "MAILER": "smtp"}
        result = run_fresh("manage.py", "check", "--deploy", "--tag", "caches", **production)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("1 silenced", result.stdout)  # W001, and nothing else


class CounterTableTests(BaseTestCase):
    """The counter table (``disclosure.ratelimit_store``) on the test database, used
    directly: it is the store whenever REDIS_URL is not set."""

    def setUp(self):
        super().setUp()
        self.store = CounterTableCache(None, {})

    def row(self, key):
        return RateLimitCounter.objects.get(key=self.store.make_key(key))

    def test_add_only_when_missing_or_expired_and_incr_counts_up(self):
        with time_machine.travel(MONDAY_10AM, tick=False) as clock:
            self.assertTrue(self.store.add("k", 1, 60))
            self.assertFalse(self.store.add("k", 1, 60))
            self.assertEqual([self.store.incr("k") for _ in range(3)], [2, 3, 4])
            self.assertEqual(self.store.incr("k", 10), 14)
            self.assertEqual(self.store.get("k"), 14)
            clock.shift(60)  # the row's time is up
            self.assertIsNone(self.store.get("k"))
            self.assertFalse(self.store.has_key("k"))
            self.assertTrue(self.store.add("k", 1, 60))  # replaces the expired row
            self.assertEqual(self.store.get("k"), 1)
            self.assertEqual(self.row("k").expires_at, MONDAY_10AM + timedelta(seconds=120))
        self.assertEqual(RateLimitCounter.objects.count(), 1)

    def test_incr_keeps_the_windows_expiry_and_refuses_a_missing_or_expired_key(self):
        with time_machine.travel(MONDAY_10AM, tick=False) as clock:
            self.store.add("k", 1, 3600)
            clock.shift(3000)
            self.assertEqual(self.store.incr("k"), 2)
            self.assertEqual(self.row("k").expires_at, MONDAY_10AM + timedelta(hours=1))
            with self.assertRaises(ValueError):
                self.store.incr("missing")
            clock.shift(600)
            with self.assertRaises(ValueError):
                self.store.incr("k")
        self.assertEqual(self.row("k").value, 2)

    def test_set_get_touch_delete_and_clear(self):
        with time_machine.travel(MONDAY_10AM, tick=False) as clock:
            self.store.set("marker", 1_800_000_000, 600)
            self.store.set("marker", 1_800_000_300, 900)  # replaces value and expiry
            self.assertEqual(self.store.get("marker"), 1_800_000_300)
            self.assertTrue(self.store.touch("marker", 60))
            self.assertFalse(self.store.touch("missing", 60))
            clock.shift(61)
            self.assertEqual(self.store.get("marker", "gone"), "gone")
            self.assertFalse(self.store.touch("marker", 60))  # expired: nothing to touch
            self.store.set("forever", 7, None)
            clock.shift(timedelta(days=3650))
            self.assertEqual(self.store.get("forever"), 7)
            self.assertTrue(self.store.delete("forever"))
            self.assertFalse(self.store.delete("forever"))
            self.store.set("a", 1, 60)
            self.store.clear()
        self.assertFalse(RateLimitCounter.objects.exists())

    def test_integers_only(self):
        for value in ("10", 1.5, None, True, [1]):
            with self.subTest(value=value), self.assertRaises(TypeError):
                self.store.set("k", value, 60)
        with self.assertRaises(TypeError):
            self.store.add("k", "1", 60)
        self.store.add("k", 1, 60)
        with self.assertRaises(TypeError):
            self.store.incr("k", 0.5)
        self.assertFalse(RateLimitCounter.objects.exclude(value=1).exists())

    def test_housekeeping_deletes_expired_rows_in_one_statement_and_keeps_current_ones(self):
        with time_machine.travel(MONDAY_10AM, tick=False), store_at(TABLE_STORE), \
                override_settings(RATE_LIMITS=rates(submit="1/h", status="100/m")):
            self.submit(REMOTE_ADDR="203.0.113.1")
            self.submit(REMOTE_ADDR="203.0.113.1")  # blocked: a marker too
            self.client.get("/status/" + "A" * 43 + "/", REMOTE_ADDR="203.0.113.2")  # a one-minute window
        old = set(RateLimitCounter.objects.values_list("key", flat=True))
        self.assertGreaterEqual(len(old), 3)
        later = MONDAY_10AM + timedelta(hours=3)
        with time_machine.travel(later, tick=False), store_at(TABLE_STORE):
            self.submit(REMOTE_ADDR="203.0.113.3")
            self.store.set("forever", 1, None)
            with CaptureQueriesContext(connection) as queries:
                deleted = tasks.housekeeping(later)["counters_deleted"]
        self.assertEqual(deleted, len(old))
        remaining = set(RateLimitCounter.objects.values_list("key", flat=True))
        self.assertEqual(len(remaining), 2)
        self.assertFalse(remaining & old)
        table = RateLimitCounter._meta.db_table
        self.assertEqual([q["sql"][:6] for q in queries if table in q["sql"]], ["DELETE"])

    def test_the_status_page_reads_one_block_marker_per_view(self):
        _, token = make_report()
        with store_at(TABLE_STORE):
            self.client.get(f"/status/{token}/")
            with CaptureQueriesContext(connection) as queries:
                self.assertEqual(self.client.get(f"/status/{token}/").status_code, 200)
        table = RateLimitCounter._meta.db_table
        self.assertEqual([q["sql"][:6] for q in queries if table in q["sql"]], ["SELECT"])


class CounterTableConcurrencyTests(TransactionTestCase):
    """Threads, each with its own database connection, count in the table at once."""

    @skipUnless(connection.vendor == "postgresql", "SQLite's in-memory test database locks whole tables without "
                "waiting (shared cache); test_separate_processes_on_an_sqlite_file_count_exactly covers SQLite")
    def test_eight_threads_adding_25_each_count_exactly_200(self):
        store = CounterTableCache(None, {})
        self.assertTrue(store.add("shared", 0, 600))

        def count():
            return [store.incr("shared") for _ in range(25)]

        seen = [value for values in run_at_once(count, times=8) for value in values]
        self.assertEqual(store.get("shared"), 200)
        self.assertEqual(sorted(seen), list(range(1, 201)))  # no two increments saw the same count

    @skipUnless(connection.vendor == "postgresql", "SQLite's in-memory test database locks whole tables without "
                "waiting (shared cache); test_separate_processes_on_an_sqlite_file_count_exactly covers SQLite")
    def test_of_eight_threads_adding_one_key_exactly_one_adds(self):
        store = CounterTableCache(None, {})
        with time_machine.travel(timezone.now() - timedelta(hours=1), tick=True):
            store.set("expired", 5, 60)  # a past window's row, replaced by exactly one thread
        for key in ("new", "expired"):
            with self.subTest(key):
                self.assertEqual(sorted(run_at_once(lambda key=key: store.add(key, 1, 600), times=8)),
                                 [False] * 7 + [True])
                self.assertEqual(store.get(key), 1)

    def test_separate_processes_on_an_sqlite_file_count_exactly(self):
        """The embedded default as it runs: gunicorn workers are processes sharing one
        SQLite file (WAL, waiting for the write lock)."""
        start = time.time() + 3  # all four count at once, each after its start-up
        script = ("import time, django; django.setup()\n"
                  "from django.core.cache import caches\n"
                  f"time.sleep(max({start} - time.time(), 0))\n"
                  "for _ in range(100): caches['ratelimit'].incr('shared')\n")
        with tempfile.TemporaryDirectory() as data_dir:
            env = {"DEBUG": "true", "DATA_DIR": data_dir}
            migrate = run_fresh("manage.py", "migrate", "--no-input", **env)
            self.assertEqual(migrate.returncode, 0, migrate.stderr)
            added = run_fresh("-c", "import django; django.setup()\nfrom django.core.cache import caches\n"
                                    "print(caches['ratelimit'].add('shared', 0, 600))", **env)
            self.assertEqual(added.stdout.strip(), "True", added.stderr)
            workers = [subprocess.Popen([sys.executable, "-c", script], cwd=settings.BASE_DIR, text=True,
                                        env=fresh_env(data_dir, **env), stderr=subprocess.PIPE) for _ in range(4)]
            for worker in workers:
                self.assertEqual(worker.wait(timeout=120), 0, worker.stderr.read())
                worker.stderr.close()
            total = run_fresh("-c", "import django; django.setup()\nfrom django.core.cache import caches\n"
                                    "print(caches['ratelimit'].get('shared'))", **env)
        self.assertEqual(total.stdout.strip(), "400", total.stderr)


@skipUnless(settings.REDIS_URL, "needs REDIS_URL")
class RedisCountTests(SimpleTestCase):
    """Django's own Redis cache, as the store with REDIS_URL."""

    def test_eight_threads_adding_25_each_count_exactly_200(self):
        store = caches[settings.RATELIMIT_USE_CACHE]
        key = f"rate-limit-test-{threading.get_ident()}"
        self.addCleanup(store.delete, key)
        self.assertTrue(store.add(key, 0, 60))
        self.assertFalse(store.add(key, 5, 60))
        seen = [value for values in run_at_once(lambda: [store.incr(key) for _ in range(25)], times=8)
                for value in values]
        self.assertEqual(store.get(key), 200)
        self.assertEqual(sorted(seen), list(range(1, 201)))


class CountlessStore(LocMemCache):
    """A store whose counter vanishes between django-ratelimit's add and incr, so it
    answers without a count (django-ratelimit would then limit everyone)."""

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return False

    def incr(self, key, delta=1, version=None):
        raise ValueError(f"Key '{key}' not found.")


class CuttableProxy:
    """A TCP proxy on loopback to a real server, which a test can cut (every connection
    through it is closed and new ones are refused, as when the server goes down) and
    restore on the same port."""

    def __init__(self, host: str, port: int):
        self.target, self.connections, self.lock = (host, port), [], threading.Lock()
        self.port = 0
        self.restore()

    def restore(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.listener.settimeout(0.05)
        self.accepting = threading.Thread(target=self._accept, args=(self.listener,), daemon=True)
        self.accepting.start()

    def _accept(self, listener):
        while listener.fileno() != -1:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.listener.close()
        self.accepting.join()
        with self.lock:
            for end in self.connections:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()
            self.connections.clear()


class StoreOutageTests(BaseTestCase):
    """With the store unreachable, researchers get through, /healthz says so, and staff
    login is still limited, per process."""

    def setUp(self):
        super().setUp()
        self.addCleanup(ratelimits.forget)

    def assertOpenForResearchers(self):
        """Over every limit, yet a report, a status page and a message get through."""
        for _ in range(3):
            with self.captureOnCommitCallbacks(execute=True):
                response = self.client.post("/report/", report_data())
            self.assertRedirects(response, "/report/received/", fetch_redirect_response=False)
        self.assertEqual(Report.objects.count(), 3)
        self.assertEqual(self.client.get("/report/received/").status_code, 200)
        _, token = make_report()
        for _ in range(3):
            self.assertEqual(self.client.get(f"/status/{token}/").status_code, 200)
            self.assertEqual(self.client.get("/status/" + "A" * 43 + "/").status_code, 404)  # misses too
        for body in ("one", "two"):
            self.assertRedirects(self.client.post(f"/status/{token}/", {"body": body}), f"/status/{token}/",
                                 fetch_redirect_response=False)

    def assertLoginStillLimited(self):
        for _ in range(3):
            self.assertEqual(self.client.post("/admin/login/", {"username": "tess", "password": "wrong"}).status_code,
                             200)
        refused = self.client.post("/admin/login/", {"username": "tess", "password": "x"})
        self.assertEqual(refused.status_code, 429)
        self.assertLessEqual(int(refused["Retry-After"]), 15 * 60)
        self.assertEqual(self.client.post("/admin/login/", {"username": "tess", "password": "wrong"},
                                          REMOTE_ADDR="198.51.100.7").status_code, 200)  # another address

    def assertHealthSaysUnreachable(self):
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503, response.content)
        body = response.json()
        self.assertEqual(body["status"], "degraded")
        self.assertEqual(body["rate_limit_store"], "unreachable")
        self.assertIn("the rate-limit store is unreachable: only staff login is limited (per process)",
                      body["problems"])
        failed_at = timezone.datetime.fromisoformat(body["rate_limit_store_failed_at"])
        self.assertLess(abs((timezone.now() - failed_at).total_seconds()), 60)

    @override_settings(RATE_LIMITS=rates(submit="1/h", status="1/h", message="1/h", login="3/15m"))
    def test_redis_on_a_closed_port(self):
        with store_at({"BACKEND": "django.core.cache.backends.redis.RedisCache",
                       "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}):
            self.assertOpenForResearchers()
            self.assertGreaterEqual(ratelimits.store_failures()["count"], 10)
            self.assertHealthSaysUnreachable()
            self.assertLoginStillLimited()

    @override_settings(RATE_LIMITS=rates(submit="1/h", status="1/h", message="1/h", login="3/15m"))
    def test_the_counter_tables_database_failing(self):
        table = connection.ops.quote_name(RateLimitCounter._meta.db_table)
        with store_at(TABLE_STORE):
            with connection.cursor() as cursor:  # undone with the test's transaction
                cursor.execute(f"ALTER TABLE {table} RENAME TO {connection.ops.quote_name('moved_away')}")
            self.assertOpenForResearchers()
            self.assertHealthSaysUnreachable()
            self.assertLoginStillLimited()

    @override_settings(RATE_LIMITS=rates(submit="1/h", status="1/h", message="1/h", login="3/15m"))
    def test_a_store_answering_without_a_count_limits_nobody_but_staff_login(self):
        with store_at({"BACKEND": "tests.test_rate_limits.CountlessStore"}):
            self.assertOpenForResearchers()
            self.assertHealthSaysUnreachable()
            self.assertLoginStillLimited()

    @skipUnless(settings.REDIS_URL, "needs REDIS_URL")
    @override_settings(RATE_LIMITS=rates(submit="2/h", login="3/15m"))
    def test_redis_cut_off_and_back(self):
        url = urlsplit(settings.CACHES["default"]["LOCATION"])
        proxy = CuttableProxy(url.hostname, url.port or 6379)
        self.addCleanup(proxy.cut)
        proxied = url._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        through_proxy = {**settings.CACHES["default"], "LOCATION": proxied}
        with override_settings(CACHES={**settings.CACHES, "default": through_proxy}, RATELIMIT_USE_CACHE="default"):
            for expected in (302, 302, 429):  # counted in Redis, through the proxy
                self.assertEqual(self.submit().status_code, expected)
            self.assertEqual(self.client.get("/healthz").json()["rate_limit_store"], "ok")
            proxy.cut()
            self.assertRedirects(self.submit(), "/report/received/", fetch_redirect_response=False)
            self.assertEqual(Report.objects.count(), 3)
            self.assertHealthSaysUnreachable()
            self.assertLoginStillLimited()
            proxy.restore()
            self.assertEqual(self.submit().status_code, 429)  # Redis kept the block
        self.assertEqual(Report.objects.count(), 3)
