"""The portal practises what the policy preaches: headers, abuse controls, hostile input,
early refusal of large bodies. (Rate limits: tests/test_rate_limits.py.)"""

import os
import re
import subprocess
import sys
from datetime import timedelta

import time_machine
from django.conf import settings
from django.core import mail
from django.test import override_settings

from disclosure.models import Report, StatusLink
from tests.base import MONDAY_10AM, BaseTestCase, make_report, report_data

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
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
