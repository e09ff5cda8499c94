"""The portal practises what the policy preaches: headers, rate limits, abuse controls,
hostile input, early refusal of large bodies."""

import os
import re
import subprocess
import sys
import tempfile
from datetime import timedelta
from unittest import skipUnless

import time_machine
from django.conf import settings
from django.core import mail
from django.test import RequestFactory, SimpleTestCase, override_settings

from disclosure import ratelimits
from disclosure.models import Report, StatusLink
from disclosure.ratelimits import client_ip
from tests.base import MONDAY_10AM, BaseTestCase, make_report, report_data, upload

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
def rates(**overrides):
    return {**settings.RATE_LIMITS, **overrides}


FILE_COUNTERS = settings.CACHES.get("ratelimit", {}).get("BACKEND", "").endswith("FileCounterCache")
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'><svg onload=alert(2)>'


class HeaderTests(BaseTestCase):
    def assertHardened(self, response):
        self.assertEqual(response["Content-Security-Policy"], CSP)
        self.assertNotIn("unsafe-inline", response["Content-Security-Policy"])
        self.assertEqual(response["X-Frame-Options"], "DENY")
        self.assertEqual(response["X-Content-Type-Options"], "nosniff")
        self.assertEqual(response["Referrer-Policy"], "same-origin")
        self.assertEqual(response["Cross-Origin-Opener-Policy"], "same-origin")
        self.assertIn("camera=()", response["Permissions-Policy"])
        self.assertNotIn("Server", response)

    def test_public_pages(self):
        report, token = make_report()
        for url in ["/", "/policy/", "/report/", "/hall-of-fame/", "/status/", f"/status/{token}/",
                    "/no-such-page/"]:
            with self.subTest(url):
                self.assertHardened(self.client.get(url))
        # security.txt is served early, with an even stricter policy (it is plain text).
        response = self.client.get("/.well-known/security.txt")
        self.assertEqual(response["Content-Security-Policy"],
                         "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        for header in ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Permissions-Policy"):
            self.assertIn(header, response)

    def test_admin_pages(self):
        self.login(self.triager)
        report, _ = make_report()
        for url in ["/admin/login/", "/admin/", "/admin/disclosure/report/",
                    f"/admin/disclosure/report/{report.pk}/change/", "/admin/metrics/"]:
            with self.subTest(url):
                self.assertHardened(self.client.get(url))

    @override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True)
    def test_hsts_over_https(self):
        self.assertEqual(self.client.get("/", secure=True)["Strict-Transport-Security"],
                         "max-age=31536000; includeSubDomains")
        self.assertNotIn("Strict-Transport-Security", self.client.get("/"))

    def test_no_inline_script_or_style_in_our_templates(self):
        from pathlib import Path

        for path in Path(settings.BASE_DIR, "templates").rglob("*.html"):
            if "emails" in path.parts:
                continue  # email HTML is not served under our CSP
            text = path.read_text()
            with self.subTest(str(path)):
                self.assertNotRegex(text, r"<script(?![^>]*\bsrc=)[^>]*>", "inline <script>")
                self.assertNotIn("<style", text)
                self.assertNotRegex(text, r"\sstyle=", "style attribute")
                self.assertNotRegex(text, r"\son[a-z]+=", "event handler attribute")

    def test_gunicorn_announces_no_version(self):
        from gunicorn.http.wsgi import Response

        self.assertNotRegex(Response.__init__.__globals__["SERVER"], r"\d")  # "Server: gunicorn"

    def test_cookies_are_secure_when_the_site_is_https(self):
        import os
        import subprocess
        import sys

        env = {**os.environ, "SITE_URL": "https://security.example.com", "DJANGO_SETTINGS_MODULE": "config.settings"}
        script = ("import django; django.setup(); from django.conf import settings as s; "
                  "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)")
        out = subprocess.run([sys.executable, "-c", script],
                             cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.split(), ["True", "True", "31536000"])

    def test_cookies(self):
        response = self.client.get("/report/")
        csrf = response.cookies["csrftoken"]
        self.assertTrue(csrf["httponly"])
        self.assertEqual(csrf["samesite"], "Lax")
        self.assertTrue(settings.SESSION_COOKIE_HTTPONLY)
        self.assertTrue(settings.SESSION_EXPIRE_AT_BROWSER_CLOSE)
        self.assertEqual(settings.SESSION_COOKIE_AGE, 8 * 3600)


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

    @skipUnless(FILE_COUNTERS, "counters are in files only on SQLite without Redis")
    def test_without_redis_counters_are_shared_by_every_process_on_the_machine(self):
        with tempfile.TemporaryDirectory() as data_dir:
            script = ("import django; django.setup()\n"
                      "from django.test import RequestFactory\n"
                      "from disclosure import ratelimits\n"
                      "request = RequestFactory().post('/report/', REMOTE_ADDR='203.0.113.5')\n"
                      "for _ in range(3): ratelimits.check(request, 'submit')\n")
            env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATA_DIR": data_dir,
                   "DEBUG": "true", "RATELIMIT_SUBMIT": "3/h"}
            counted = subprocess.run([sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env,
                                     capture_output=True, text=True, timeout=120, check=False)
            self.assertEqual(counted.returncode, 0, counted.stderr)
            shared = {**settings.CACHES["ratelimit"], "LOCATION": f"{data_dir}/ratelimit"}
            with override_settings(CACHES={**settings.CACHES, "ratelimit": shared}, RATE_LIMITS=rates(submit="3/h")):
                self.assertEqual(self.submit(REMOTE_ADDR="203.0.113.5").status_code, 429)
                self.assertEqual(self.submit(REMOTE_ADDR="203.0.113.6").status_code, 302)
        self.assertEqual(Report.objects.count(), 1)

    @override_settings(RATE_LIMITS=rates(submit="3/h"))
    def test_a_count_lasts_its_whole_window_not_the_caches_default_five_minutes(self):
        from django_ratelimit.core import _get_window

        with time_machine.travel(MONDAY_10AM, tick=False):
            edge = _get_window("127.0.0.1", 3600)  # where this client's hourly windows begin
        with time_machine.travel(edge + 1, tick=False) as clock:
            for _ in range(3):
                self.assertEqual(self.submit().status_code, 302)
            clock.shift(timedelta(minutes=40))
            ratelimits.forget()  # as another process would: no memory of the block
            self.assertEqual(self.submit().status_code, 429)
            clock.shift(timedelta(minutes=20))  # the next window
            ratelimits.forget()
            self.assertEqual(self.submit().status_code, 302)

    @skipUnless(FILE_COUNTERS, "counters are in files only on SQLite without Redis")
    def test_file_counters_add_atomically_across_processes(self):
        script = ("import django; django.setup()\n"
                  "from disclosure import ratelimits\n"
                  "for _ in range(300): ratelimits._cache().incr('shared-counter')\n")
        with tempfile.TemporaryDirectory() as data_dir:
            shared = {**settings.CACHES["ratelimit"], "LOCATION": f"{data_dir}/ratelimit"}
            with override_settings(CACHES={**settings.CACHES, "ratelimit": shared}):
                store = ratelimits._cache()
                store.set("shared-counter", 0, 600)
                env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true",
                       "DATA_DIR": data_dir}
                workers = [subprocess.Popen([sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env,
                                            stderr=subprocess.PIPE, text=True) for _ in range(2)]
                for worker in workers:
                    self.assertEqual(worker.wait(timeout=120), 0, worker.stderr.read())
                    worker.stderr.close()
                self.assertEqual(store.get("shared-counter"), 600)

    @skipUnless(FILE_COUNTERS, "counters are in files only on SQLite without Redis")
    def test_housekeeping_deletes_counters_of_past_windows_and_keeps_current_ones(self):
        from disclosure import tasks

        store = ratelimits._cache()
        with time_machine.travel(MONDAY_10AM, tick=False) as clock:
            self.submit(REMOTE_ADDR="203.0.113.1")
            self.submit(REMOTE_ADDR="203.0.113.2")
            old = set(store._list_cache_files())
            self.assertTrue(old)
            clock.shift(timedelta(hours=3))
            self.submit(REMOTE_ADDR="203.0.113.3")
            self.assertEqual(tasks.housekeeping()["counters_deleted"], len(old))
            remaining = set(store._list_cache_files())
        self.assertTrue(remaining)
        self.assertFalse(remaining & old)

    def test_a_block_recorded_by_another_process_applies_here_within_a_second(self):
        from disclosure import ratelimits

        _, token = make_report()
        with time_machine.travel(MONDAY_10AM, tick=False) as clock:
            self.assertEqual(self.client.get(f"/status/{token}/").status_code, 200)
            request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1")
            ratelimits._cache().set(ratelimits._blocked_key("status", request), MONDAY_10AM.timestamp() + 600, 600)
            self.assertEqual(self.client.get(f"/status/{token}/").status_code, 200)  # read a moment ago
            clock.shift(1.5)
            blocked = self.client.get(f"/status/{token}/")
        self.assertEqual(blocked.status_code, 429)
        self.assertLessEqual(int(blocked["Retry-After"]), 600)

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

    def test_client_address_comes_from_remote_addr_unless_proxies_are_trusted(self):
        request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5")
        self.assertEqual(client_ip("g", request), "10.0.0.2")
        with override_settings(TRUSTED_PROXY_COUNT=1):
            self.assertEqual(client_ip("g", request), "203.0.113.5")
        with override_settings(TRUSTED_PROXY_COUNT=3):
            self.assertEqual(client_ip("g", request), "10.0.0.2")  # fewer hops than proxies: forged


@time_machine.travel(MONDAY_10AM, tick=False)
class LostLinkTests(BaseTestCase):
    def ask(self, email):
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/status/", {"email": email}, follow=True)
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())

    def test_fresh_links_replace_the_old_ones(self):
        first, old_token = make_report()
        second, _ = make_report(title="Second")
        make_report(reporter_email="someone@else.example")
        mail.outbox.clear()
        self.ask("ADA@researcher.example")
        self.assertEqual(self.client.get(f"/status/{old_token}/").status_code, 404)
        messages = sorted(mail.outbox, key=lambda m: m.subject)
        self.assertEqual([m.subject for m in messages], ["[VDP-2026-0001] Your new private status link",
                                                         "[VDP-2026-0002] Your new private status link"])
        for message, report in zip(messages, [first, second], strict=True):
            token = self.status_token_in(message.body)
            self.assertEqual(StatusLink.find_report(token), report)

    def test_the_answer_is_the_same_whether_or_not_reports_exist(self):
        make_report()
        known = self.ask("ada@researcher.example")
        unknown = self.ask("nobody@nowhere.example")
        self.assertEqual(known, unknown)
        self.assertIn("If we have reports from that address", known)

    def test_bad_address_gets_a_form_error(self):
        response = self.client.post("/status/", {"email": "not an address"})
        self.assertContains(response, "Enter a valid email address.", status_code=400)

    @override_settings(RATE_LIMITS=rates(lost_link="2/h"))
    def test_rate_limited(self):
        self.ask("a@example.com")
        self.ask("b@example.com")
        self.assertEqual(self.client.post("/status/", {"email": "c@example.com"}).status_code, 429)


@time_machine.travel(MONDAY_10AM, tick=False)
class SpamControlTests(BaseTestCase):
    def test_honeypot_field_refuses_the_submission(self):
        response = self.submit(report_data(website="http://cheap-pills.example"))
        self.assertContains(response, "This field must stay empty", status_code=400)
        self.assertFalse(Report.objects.exists())

    def test_a_form_submitted_faster_than_a_person_can_is_refused(self):
        shown = self.blank_form_values()
        data = report_data(shown_at=shown["shown_at"], submission_id=shown["submission_id"])
        self.assertContains(self.submit(data), "faster than anyone", status_code=400)
        with time_machine.travel(MONDAY_10AM + timedelta(seconds=5), tick=False):
            self.assertEqual(self.submit(data).status_code, 302)
        self.assertEqual(Report.objects.count(), 1)

    def test_a_forged_timestamp_is_refused(self):
        self.assertContains(self.submit(report_data(shown_at="report-form:1abc:forged")), "The form was damaged",
                            status_code=400)

    def test_the_honeypot_is_hidden_from_people(self):
        page = self.client.get("/report/").content.decode()
        self.assertIn('<div class="hp" aria-hidden="true">', page)
        self.assertIn('tabindex="-1"', page)


class LargeBodyTests(BaseTestCase):
    @override_settings(MAX_REQUEST_BYTES=10_000)
    def test_oversized_bodies_are_refused_before_reading(self):
        response = self.client.post("/report/", {"title": "t", "description": "x" * 20_000})
        self.assertEqual(response.status_code, 413)
        self.assertContains(response, "too large to accept", status_code=413)
        self.assertFalse(Report.objects.exists())


@time_machine.travel(MONDAY_10AM, tick=False)
class XssTests(BaseTestCase):
    def test_payloads_in_every_field_render_inert_everywhere(self):
        fields = {name: XSS for name in ("title", "description", "asset", "vulnerability_type", "steps_to_reproduce",
                                         "impact", "reporter_name", "credit_name")}
        with self.captureOnCommitCallbacks(execute=True):
            report, token = make_report(**fields, credit="name")
            report.send_message(self.triager, XSS)
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post(f"/status/{token}/", {"body": XSS})
        self.login(self.triager)
        pages = {
            "status": self.client.get(f"/status/{token}/").content.decode(),
            "admin": self.client.get(f"/admin/disclosure/report/{report.pk}/change/").content.decode(),
            "admin list": self.client.get("/admin/disclosure/report/").content.decode(),
        }
        for message in mail.outbox:
            pages[f"email {message.subject}"] = self.html_of(message)
        for name, html in pages.items():
            with self.subTest(name):
                self.assertNotIn("<script>alert", html)
                self.assertNotIn("<img src=x onerror", html)
                self.assertNotIn("<svg onload", html)


class ReporterExportTests(BaseTestCase):
    def test_reporter_downloads_their_report_as_json(self):
        report, token = make_report()
        report.add_note(self.triager, "internal only")
        report.send_message(self.triager, "visible reply")
        response = self.client.get(f"/status/{token}/export.json")
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertIn('attachment; filename="VDP-2026-0001.json"', response["Content-Disposition"])
        data = response.json()
        self.assertEqual(data["tracking_id"], "VDP-2026-0001")
        self.assertEqual(data["description"], report.description)
        messages = [event["message"] for event in data["timeline"]]
        self.assertIn("visible reply", messages)
        self.assertNotIn("internal only", response.content.decode())


@skipUnless(settings.REDIS_URL, "needs REDIS_URL")
class RedisCacheTests(SimpleTestCase):
    """Django's Redis backend with one client per pool (disclosure/rediscache.py)."""

    def test_one_client_serves_every_operation_and_counting_still_works(self):
        from django.core.cache import caches

        cache = caches["default"]
        self.assertIs(cache._cache.get_client("a"), cache._cache.get_client("b", write=True))
        key = f"rediscache-test-{os.getpid()}"
        self.addCleanup(cache.delete, key)
        self.assertTrue(cache.add(key, 0, 60))
        self.assertFalse(cache.add(key, 5, 60))
        self.assertEqual([cache.incr(key) for _ in range(3)], [1, 2, 3])
        self.assertEqual(cache.get(key), 3)

