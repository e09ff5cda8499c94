"""Hostile input in every reporter field is inert on the status page, in the admin and in email."""


import time_machine
from django.core import mail

from tests.base import MONDAY_10AM, BaseTestCase, make_report

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'><svg onload=alert(2)>'


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
