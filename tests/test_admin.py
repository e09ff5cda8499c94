"""Staff see reports in the admin, with the reporter's content rendered safely."""

import re

import time_machine
from django.contrib.auth.models import Group, User
from django.test import override_settings
from django_otp.plugins.otp_totp.models import TOTPDevice

from disclosure.markdown import render
from disclosure.models import OutboundEmail
from tests.base import MONDAY_10AM, BaseTestCase, make_report, upload
from tests.mailers import DOWN


@time_machine.travel(MONDAY_10AM, tick=False)
class ReportAdminTests(BaseTestCase):
    def test_list_search_and_detail(self):
        report, _ = make_report(files=[upload("poc.txt")])
        make_report(title="SQL injection in search", asset="https://shop.example.com")
        self.login(self.triager)
        listing = self.client.get("/admin/disclosure/report/")
        self.assertContains(listing, "VDP-2026-0001")
        self.assertContains(listing, "SQL injection in search")
        found = self.client.get("/admin/disclosure/report/?q=shop.example.com")
        self.assertContains(found, "VDP-2026-0002")
        self.assertNotContains(found, "Stored XSS in profile page")
        detail = self.client.get(f"/admin/disclosure/report/{report.pk}/change/")
        self.assertContains(detail, "<em>bio</em>", html=True)
        self.assertContains(detail, "poc.txt")
        self.assertContains(detail, "Report received")

    def test_reporter_html_is_never_rendered_raw(self):
        report, _ = make_report(
            title='<img src=x onerror="alert(1)">',
            description='<script>alert(1)</script> [click](javascript:alert(1)) <a href="x" onclick="y">z</a>',
        )
        self.login(self.triager)
        detail = self.client.get(f"/admin/disclosure/report/{report.pk}/change/").content.decode()
        self.assertNotIn("<script>alert(1)", detail)
        self.assertNotIn('<img src=x onerror="alert(1)">', detail)
        self.assertNotIn('href="javascript:', detail)
        self.assertNotIn('<a href="x" onclick', detail)

    def test_email_subjects_are_plain_text_not_html_escaped(self):
        with self.captureOnCommitCallbacks(execute=True):
            make_report(title="Bypass of <a> & \"quotes\"")
        from disclosure.models import OutboundEmail

        self.assertEqual(OutboundEmail.objects.get(kind="team-new-report").subject,
                         '[VDP-2026-0001] New report: Bypass of <a> & "quotes"')

    def test_reports_only_arrive_through_the_form(self):
        self.login(self.lead)
        self.assertEqual(self.client.get("/admin/disclosure/report/add/").status_code, 403)

    def test_strangers_and_anonymous_users_see_nothing(self):
        make_report()
        self.assertEqual(self.client.get("/admin/disclosure/report/").status_code, 302)
        self.login(self.stranger)
        self.assertEqual(self.client.get("/admin/disclosure/report/").status_code, 302)


class MarkdownTests(BaseTestCase):
    def test_markdown_is_rendered_and_sanitised(self):
        self.assertEqual(render("**bold** and `code`"), "<p><strong>bold</strong> and <code>code</code></p>\n")
        self.assertNotIn("<script", render("<script>alert(1)</script>"))
        self.assertNotIn("href", render("[x](javascript:alert(1))"))
        self.assertIn('rel="noopener noreferrer nofollow"', render("[x](https://example.com)"))


@time_machine.travel(MONDAY_10AM, tick=False)
class AdminSafetyTests(BaseTestCase):
    def test_a_non_numeric_report_id_in_a_decision_url_is_not_an_error(self):
        self.login(self.triager)
        response = self.client.post("/admin/disclosure/report/abc/act/acknowledge/")
        self.assertIn(response.status_code, (302, 404))  # the admin's own fallback, never a 500

    def test_retry_leaves_pending_emails_alone(self):
        with override_settings(MAILERS=DOWN):
            self.submit()
        receipt = OutboundEmail.objects.get(kind="receipt")
        self.assertEqual((receipt.state, receipt.attempts), ("pending", 1))
        self.login(self.triager)
        self.client.post("/admin/disclosure/outboundemail/", {"action": "retry_now",
                                                              "_selected_action": [receipt.pk]})
        receipt.refresh_from_db()
        self.assertEqual((receipt.state, receipt.attempts), ("pending", 1))  # not reset while in progress

    def test_leads_cannot_read_anyone_s_totp_secret(self):
        lead = User.objects.create_user("lena", "lena@example.com", "a-long-password-1", is_staff=True)
        lead.groups.add(Group.objects.get(name="Lead"))
        device = TOTPDevice.objects.create(user=self.triager, name="phone", confirmed=True)
        self.login(lead)
        page = self.client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()
        self.assertNotIn(device.key, page)


class AdminIndexTests(BaseTestCase):
    def test_every_app_has_a_readable_name(self):
        self.login(self.lead)
        index = self.client.get("/admin/")
        self.assertNotContains(index, "Otp_Totp")
        self.assertContains(index, "Two-factor login")
        captions = re.findall(r'<caption>\s*<a[^>]*>([^<]*)</a>', index.content.decode())
        self.assertEqual(captions, ["Authentication and Authorization", "Task queue", "Two-factor login",
                                    "Vulnerability disclosure"])
        self.assertEqual([c for c in captions if "_" in c], [])
