"""End to end in a real browser: the researcher's and the triager's journeys, encryption in
the page, accessibility (axe-core) and keyboard use."""

import base64
import json
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import override_settings
from django_otp.oath import totp

from disclosure import pgp, securitytxt
from disclosure.models import Attachment, Report
from tests.browser import PHONE, BrowserTestCase
from tests.recording import RECEIVED

SECRET = "Unauthenticated RCE via the image resizer: send a crafted SVG"


def write_file(name: str, content: bytes) -> str:
    folder = Path(tempfile.mkdtemp(prefix="disclosure-browser-files-"))
    path = folder / name
    path.write_bytes(content)
    return str(path)


class ResearcherJourneyTests(BrowserTestCase):
    def test_submit_with_attachments_follow_the_link_and_reply(self):
        page = self.page
        page.goto(self.url("/"))
        page.get_by_role("link", name="Report a vulnerability").first.click()
        page.get_by_label("Title").fill("Stored XSS in profile bio")
        page.get_by_label("Description").fill("The *bio* field renders HTML.")
        page.get_by_label("Affected URL or product").fill("https://app.example.com/profile")
        page.get_by_label("Your email address").fill("ada@researcher.example")
        page.get_by_label("Attachments").set_input_files([write_file("poc.html", b"<script>alert(1)</script>"),
                                                          write_file("notes.txt", b"steps")])
        page.get_by_role("button", name="Submit report").click()
        page.wait_for_url("**/report/received/")
        tracking_id = page.locator(".tracking-id").inner_text()
        self.assertRegex(tracking_id, r"^VDP-\d{4}-0001$")
        status_url = page.locator("a.status-link").get_attribute("href")
        self.assertEqual(Attachment.objects.count(), 2)

        page.goto(status_url)
        self.assertIn("The security team has not acknowledged it yet.", page.content())
        page.get_by_label("Your message").fill("Also affects the mobile app.")
        page.locator("#reply-heading ~ form input[type=file]").set_input_files(write_file("more.txt", b"more"))
        page.get_by_role("button", name="Send message").click()
        page.wait_for_load_state()
        self.assertIn("Your message was sent to the security team.", page.content())
        self.assertIn("Also affects the mobile app.", page.content())

    def test_form_errors_are_announced_and_linked(self):
        page = self.page
        page.goto(self.url("/report/"))
        page.get_by_role("button", name="Submit report").click()
        page.wait_for_load_state()
        summary = page.get_by_role("alert")
        self.assertIn("Title: This field is required.", summary.inner_text())
        summary.get_by_role("link", name="Title").click()
        self.assertEqual(page.evaluate("document.activeElement.id"), "id_title")
        self.assertEqual(page.get_by_label("Title").get_attribute("aria-invalid"), "true")

    def test_the_form_works_by_keyboard_alone(self):
        page = self.page
        page.goto(self.url("/report/"))
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Enter")
        page.get_by_label("Title").focus()
        page.keyboard.type("Keyboard-only report")
        page.keyboard.press("Tab")
        page.keyboard.type("Found without a mouse.")
        page.get_by_role("button", name="Submit report").focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/report/received/**")
        self.assertEqual(Report.objects.get().title, "Keyboard-only report")


class TriagerJourneyTests(BrowserTestCase):
    @override_settings(STAFF_2FA_REQUIRED=True)
    def test_triager_logs_in_with_two_factors_and_works_a_report(self):
        user = User.objects.create_user("tess", "tess@example.com", "a-long-password-1", is_staff=True)
        user.groups.add(Group.objects.get(name="Triager"))
        report, token = Report.submit(fields={"title": "Open redirect on login", "description": "`/login?next=`",
                                              "reporter_email": "ada@researcher.example"})
        page = self.page
        page.goto(self.url("/admin/"))
        page.get_by_label("Username").fill("tess")
        page.get_by_label("Password").fill("a-long-password-1")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/admin/2fa/**")
        self.assertIn("Set up two-factor authentication", page.content())
        secret = page.locator("code").inner_text()
        code = f"{totp(base64.b32decode(secret)):06d}"
        page.get_by_label("6-digit code from your authenticator app").fill(code)
        page.get_by_role("button", name="Confirm and continue").click()
        page.wait_for_url("**/admin/")

        page.goto(self.url(f"/admin/disclosure/report/{report.pk}/change/"))
        page.locator("form[action$='/act/acknowledge/'] button").click()
        page.wait_for_load_state()
        self.assertIn(f"{report.tracking_id} acknowledged.", page.content())
        triage = page.locator("form[action$='/act/triage/']")
        triage.get_by_label("Severity").select_option("high")
        triage.get_by_role("button").click()
        page.wait_for_load_state()
        self.assertIn("triaged as valid", page.content())
        reply = page.locator("form[action$='/act/send_message/']")
        reply.locator("textarea").fill("Thanks! A fix ships on Friday.")
        reply.get_by_role("button").click()
        page.wait_for_load_state()

        reporter = self.new_page()
        reporter.goto(self.url(f"/status/{token}/"))
        text = reporter.content()
        self.assertIn("Confirmed as a valid vulnerability", text)
        self.assertIn("Thanks! A fix ships on Friday.", text)
        subjects = [m.subject for m in mail.outbox if m.to == ["ada@researcher.example"]]
        self.assertIn(f"[{report.tracking_id}] Your report has been acknowledged", subjects)


class BrowserEncryptionTests(BrowserTestCase):
    @classmethod
    def setUpClass(cls):
        cls.gnupg_home = tempfile.mkdtemp(prefix="disclosure-browser-gnupg-")
        with override_settings(GNUPG_HOME=Path(cls.gnupg_home)):
            cls.fingerprint = pgp.generate_team_key("security@localhost", "Test team")
        # The live server reads MIDDLEWARE when it starts: record request bodies from the outset.
        cls._keys = override_settings(GNUPG_HOME=Path(cls.gnupg_home), TEAM_KEY_FINGERPRINT=cls.fingerprint,
                                      MIDDLEWARE=["tests.recording.RecordBodies", *settings.MIDDLEWARE])
        cls._keys.enable()
        cls.addClassCleanup(shutil.rmtree, cls.gnupg_home, ignore_errors=True)
        cls.addClassCleanup(pgp.stop_agent, cls.gnupg_home)
        cls.addClassCleanup(cls._keys.disable)  # after the base class's own overrides are undone
        super().setUpClass()

    def setUp(self):
        super().setUp()
        securitytxt.forget()
        pgp.forget()

    def test_the_server_never_receives_the_plaintext(self):
        RECEIVED.clear()
        page = self.page
        page.goto(self.url("/report/"))
        self.assertTrue(page.locator("#encrypt-in-browser").is_checked())
        page.get_by_label("Title").fill("Image resizer RCE")
        page.get_by_label("Description").fill(SECRET)
        page.get_by_label("Impact").fill("Full server compromise")
        page.get_by_label("Attachments").set_input_files(write_file("exploit.svg", b"<svg>PAYLOAD-XYZ</svg>"))
        page.get_by_role("button", name="Submit report").click()
        page.wait_for_url("**/report/received/")
        [body] = RECEIVED
        self.assertNotIn(SECRET.encode(), body)
        self.assertNotIn(b"Full server compromise", body)
        self.assertNotIn(b"PAYLOAD-XYZ", body)
        self.assertIn(b"-----BEGIN PGP MESSAGE-----", body)
        self.assertIn(b"Image resizer RCE", body)  # the title stays readable for triage
        report = Report.objects.get()
        self.assertEqual(pgp.decrypt(report.description).decode(), SECRET)
        attachment = report.attachments.get()
        self.assertEqual(attachment.original_name, "exploit.svg.asc")
        self.assertEqual(attachment.read_plain(), (b"<svg>PAYLOAD-XYZ</svg>", "exploit.svg"))

    def test_without_the_checkbox_the_form_sends_normally(self):
        page = self.page
        page.goto(self.url("/report/"))
        page.locator("#encrypt-in-browser").uncheck()
        page.get_by_label("Title").fill("Plain submission")
        page.get_by_label("Description").fill("sent over https")
        page.get_by_role("button", name="Submit report").click()
        page.wait_for_url("**/report/received/")
        sealed = Report.objects.get().sealed_content
        self.assertEqual(json.loads(pgp.decrypt(sealed))["description"], "sent over https")


class AccessibilityTests(BrowserTestCase):
    def audit(self, page):
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(page)
        serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        return [f"{v['id']}: {v['help']} ({len(v['nodes'])} node(s))" for v in serious]

    def test_public_pages_have_no_serious_violations_at_desktop_and_phone_widths(self):
        report, token = Report.submit(fields={"title": "A report", "description": "Details", "credit": "name",
                                              "credit_name": "ada", "reporter_email": "a@example.com"})
        pages = ["/", "/policy/", "/report/", f"/status/{token}/", f"/status/{token}/submitted/", "/hall-of-fame/",
                 "/status/"]
        for viewport in (None, PHONE):
            page = self.new_page()
            if viewport:
                page.set_viewport_size(viewport)
            for path in pages:
                page.goto(self.url(path))
                with self.subTest(path=path, viewport=viewport):
                    self.assertEqual(self.audit(page), [])
            # Error states: the form with errors, and the confirmation page.
            page.goto(self.url("/report/"))
            page.get_by_role("button", name="Submit report").click()
            page.wait_for_load_state()
            self.assertEqual(self.audit(page), [], "form with errors")
            page.get_by_label("Title").fill("t")
            page.get_by_label("Description").fill("d")
            page.get_by_role("button", name="Submit report").click()
            page.wait_for_url("**/report/received/")
            self.assertEqual(self.audit(page), [], "confirmation")
            # The status page's small forms sent back with errors, and a flashed error.
            page.goto(self.url(f"/status/{token}/"))
            page.get_by_text("Add your public key").click()
            page.get_by_label("Your PGP public key").fill("not a key")
            page.get_by_role("button", name="Save", exact=True).click()
            page.wait_for_load_state()
            self.assertIn("Paste an ASCII-armored public key", page.content())
            self.assertEqual(self.audit(page), [], "status page, key with an error")
            # Withdrawing is a section of its own, not a part of "Encrypted email".
            heading = page.get_by_role("heading", name="Withdraw this report")
            self.assertTrue(heading.is_visible())
            self.assertEqual(heading.evaluate("h => h.closest('section').querySelector('h2').id"), "withdraw-heading")
            page.get_by_role("button", name="Withdraw report").evaluate("b => b.form.noValidate = true")
            page.get_by_role("button", name="Withdraw report").click()
            page.wait_for_load_state()
            self.assertIn("Tick the box to confirm", page.content())
            self.assertEqual(self.audit(page), [], "status page, flashed error")

    def test_no_horizontal_scrolling_on_a_phone(self):
        report, token = Report.submit(fields={"title": "x", "description": "`" + "a" * 300 + "`"})
        page = self.new_page()
        page.set_viewport_size(PHONE)
        for path in ["/", "/policy/", "/report/", f"/status/{token}/"]:
            page.goto(self.url(path))
            width = page.evaluate("document.documentElement.scrollWidth")
            self.assertLessEqual(width, PHONE["width"], path)


class AdminLooksTests(BrowserTestCase):
    """What only a browser shows: the admin's styles."""

    def styles(self, page, selector):
        return page.locator(selector).first.evaluate(
            "e => { const s = getComputedStyle(e); return [s.listStyleType, s.backgroundColor]; }")

    def test_reporter_markdown_looks_as_on_the_status_page(self):
        markdown = "Steps:\n\n- open the page\n- paste the payload\n\n```\ncurl -X POST /x\n```"
        report, token = Report.submit(fields={"title": "Lists and code", "description": markdown})
        report.send_message(None, "Please check:\n\n- this\n- that\n\n```\nverbose log\n```")
        page = self.page
        page.goto(self.url(f"/status/{token}/submitted/"))  # the reporter's own text
        public = {"item": self.styles(page, ".prose li")[0], "code": self.styles(page, ".prose pre")[1]}
        page.goto(self.url(f"/status/{token}/"))  # the team's message, in the timeline
        public["message code"] = self.styles(page, ".message-body pre")[1]
        self.assertEqual(public["item"], "disc")
        self.assertNotEqual(public["code"], "rgba(0, 0, 0, 0)")
        self.assertIn(self.styles(page, ".message-body li")[0], ("disc", "circle"))  # nested in the timeline

        self.log_in(User.objects.create_superuser("leo", "leo@example.com", "a-long-password-1"))
        page.goto(self.url(f"/admin/disclosure/report/{report.pk}/change/"))
        description = ".field-rendered_description"
        admin = {"item": self.styles(page, f"{description} li")[0],
                 "code": self.styles(page, f"{description} pre")[1],
                 "message code": self.styles(page, ".tl-body pre")[1]}
        self.assertEqual(admin, public)
        self.assertIn(self.styles(page, ".tl-body li")[0], ("disc", "circle"))

    def test_the_dashboard_breadcrumbs_look_like_the_rest_of_the_admin(self):
        self.log_in(User.objects.create_superuser("leo", "leo@example.com", "a-long-password-1"))
        page = self.page
        look = ("e => { const s = getComputedStyle(e); "
                "return [s.backgroundColor, s.color, s.paddingLeft, e.innerText.replace(/\\s+/g, ' ').trim()]; }")
        page.goto(self.url("/admin/disclosure/report/"))
        queue = page.locator("nav[aria-label=Breadcrumbs] .breadcrumbs").evaluate(look)
        page.goto(self.url("/admin/metrics/"))
        dashboard = page.locator("nav[aria-label=Breadcrumbs] .breadcrumbs").evaluate(look)
        self.assertEqual(dashboard[:3], queue[:3])
        self.assertEqual(dashboard[3], "HomeDashboard")  # with the admin's separator between them:
        separator = "e => getComputedStyle(e, '::after').content"
        self.assertIn("›", page.locator(".breadcrumbs li").first.evaluate(separator))


class ResearcherPagesTests(BrowserTestCase):
    """Layout a researcher sees, where only a browser can tell."""

    def submit_in_the_browser(self, page):
        page.goto(self.url("/report/"))
        page.get_by_label("Title").fill("Open redirect on /login")
        page.get_by_label("Description").fill("The next parameter is not checked.")
        page.get_by_role("button", name="Submit report").click()
        page.wait_for_url("**/report/received/")

    def test_the_status_link_fits_a_phone_and_its_copy_button_copies_it(self):
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=self.live_server_url)
        page = self.page
        page.set_viewport_size(PHONE)
        self.submit_in_the_browser(page)
        self.assertLessEqual(page.evaluate("document.documentElement.scrollWidth"), PHONE["width"])
        link = page.locator("#status-url").input_value()
        self.assertIn("/status/", link)
        field = page.locator("#status-url").bounding_box()
        self.assertLessEqual(field["x"] + field["width"], PHONE["width"])
        button = page.get_by_role("button", name="Copy link")
        button.click()
        page.get_by_role("button", name="Copied").wait_for()
        self.assertEqual(page.evaluate("navigator.clipboard.readText()"), link)

    def test_the_file_input_looks_like_the_other_controls(self):
        page = self.page
        page.goto(self.url("/report/"))
        look = ("e => { const s = getComputedStyle(e); "
                "return [s.borderTopColor, s.borderTopStyle, s.borderRadius, s.backgroundColor, e.offsetWidth]; }")
        self.assertEqual(page.locator("#id_attachments").evaluate(look), page.locator("#id_title").evaluate(look))
        button = page.locator("#id_attachments").evaluate(
            "e => getComputedStyle(e, '::file-selector-button').borderTopColor")
        brand = page.locator("button.button").first.evaluate("e => getComputedStyle(e).backgroundColor")
        self.assertEqual(button, brand)
