"""Security headers on every response, cookies, and large bodies refused before they are read."""

import os
import subprocess
import sys

from django.conf import settings
from django.test import override_settings

from disclosure.models import Report
from tests.base import BaseTestCase, make_report

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


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


class LargeBodyTests(BaseTestCase):
    @override_settings(MAX_REQUEST_BYTES=10_000)
    def test_oversized_bodies_are_refused_before_reading(self):
        response = self.client.post("/report/", {"title": "t", "description": "x" * 20_000})
        self.assertEqual(response.status_code, 413)
        self.assertContains(response, "too large to accept", status_code=413)
        self.assertFalse(Report.objects.exists())
