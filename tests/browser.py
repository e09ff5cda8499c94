"""Browser tests: Playwright driving Debian's chromium against a live server.

Never downloads a browser: it uses /usr/bin/chromium (``apt-get install chromium``), and
skips with a clear reason when it is missing (``.ci/run`` installs it, so CI always runs
these). Every page visited is watched for console errors, page errors and CSP violations.
"""

import os
import shutil
from importlib import import_module

from django.apps import apps
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import override_settings

from tests.base import start_afresh

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

CSP_LISTENER = """document.addEventListener('securitypolicyviolation', (e) =>
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI));"""


# MEDIA_URL: Django's live server wraps the site in a media-file handler that needs a URL
# (the portal itself sets none: uploads are never served directly).
@override_settings(MIN_FORM_SECONDS=0, RATELIMIT_ENABLE=False, ALLOWED_HOSTS=["localhost", "127.0.0.1"],
                   MEDIA_URL="/never-served-media/")
class BrowserTestCase(StaticLiveServerTestCase):
    host = "127.0.0.1"

    @classmethod
    def setUpClass(cls):
        if not shutil.which(CHROMIUM):
            raise cls.skipException(f"{CHROMIUM} is not installed (apt-get install chromium)")
        # Playwright's sync API runs an event loop in this thread, which Django's ORM would
        # otherwise refuse to be called from.
        previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        cls.addClassCleanup(lambda: os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None) if previous is None
                            else os.environ.update(DJANGO_ALLOW_ASYNC_UNSAFE=previous))
        super().setUpClass()
        from playwright.sync_api import sync_playwright

        cls._playwright = sync_playwright().start()
        cls.browser = cls._playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls._playwright.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        # A TransactionTestCase empties the database after each test: restore the roles
        # the data migration creates, and point links that leave the site at this server.
        import_module("disclosure.migrations.0002_roles").create_roles(apps, None)
        self.enterContext(override_settings(SITE_URL=self.live_server_url))
        start_afresh(self)
        self.problems = []
        self.context = self.browser.new_context(viewport=DESKTOP)
        self.addCleanup(self.context.close)
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.add_init_script(CSP_LISTENER)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        page.set_default_timeout(15_000)
        return page

    def _console(self, message):
        # A page answered with 4xx on purpose (a form with errors, a 404) is logged by the
        # browser as a failed resource; failing sub-resources are caught in _response.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")

    def _request_failed(self, request):
        # A navigation cancels what the previous page was still loading: not a failure.
        if "ERR_ABORTED" not in (request.failure or ""):
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response):
        if response.request.resource_type != "document" and response.status >= 400:
            self.problems.append(f"{response.status} for {response.url}")

    def url(self, path):
        return self.live_server_url + path

    def log_in(self, user):
        """Give the browser a staff session that has passed the second factor."""
        from django.conf import settings
        from django.test import Client
        from django_otp.plugins.otp_totp.models import TOTPDevice

        client = Client()
        client.force_login(user)
        device, _ = TOTPDevice.objects.get_or_create(user=user, defaults={"name": "browser", "confirmed": True})
        session = client.session
        session["otp_device_id"] = device.persistent_id
        session.save()
        self.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session.session_key,
                                   "url": self.live_server_url}])

    def tearDown(self):
        # No console errors, JavaScript errors or CSP violations on any page visited.
        self.assertEqual(self.problems, [])
        super().tearDown()
