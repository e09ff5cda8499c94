"""What a reporter reads when their report is closed: the email and the status page agree
(no invitation to reply to a report that no longer takes messages), and someone closed as
spam reads a neutral "Closed"."""

import json
import re

import time_machine
from django.core import mail

from disclosure.models import Status
from disclosure.staff_forms import closing_reply
from tests.base import MONDAY_10AM, STATUS_URL, BaseTestCase, make_report

NEW_REPORT = "This report is closed. If you have something new, please submit a new report"


def visible_text(html: str) -> str:
    """The words a reader sees: tags removed, whitespace collapsed."""
    html = re.sub(r"<(script|style|head)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" .", ".")


@time_machine.travel(MONDAY_10AM, tick=False)
class ClosingTestCase(BaseTestCase):
    def setUp(self):
        super().setUp()
        with self.captureOnCommitCallbacks(execute=True):
            self.report, self.token = make_report()
        mail.outbox.clear()

    def decide(self, method, *args, **kwargs):
        with self.captureOnCommitCallbacks(execute=True):
            getattr(self.report, method)(self.triager, *args, **kwargs)
        self.report.refresh_from_db()
        [message] = self.emails_to("ada@researcher.example")
        mail.outbox.clear()
        return message

    def status_text(self):
        return visible_text(self.client.get(f"/status/{self.token}/").content.decode())


class ClosedReportsTakeNoRepliesTests(ClosingTestCase):
    def test_the_closing_email_says_what_the_status_page_says(self):
        message = self.decide("close", Status.INFORMATIVE, body=closing_reply(self.report, Status.INFORMATIVE))
        text, html = message.body, visible_text(self.html_of(message))
        page = self.status_text()
        for content in (text, html, page):
            self.assertIn(NEW_REPORT, " ".join(content.split()))
        self.assertIn("http://127.0.0.1:8000/report/", text)
        self.assertIn('href="http://127.0.0.1:8000/report/"', self.html_of(message))
        for content in (text, html):
            self.assertNotIn("reply", content.lower())
        self.assertNotIn("Send a message", page)
        self.assertNotContains(self.client.get(f"/status/{self.token}/"), 'name="body"')

    def test_a_resolved_report_takes_no_messages_and_its_email_does_not_ask_for_one(self):
        self.decide("triage", "high")
        message = self.decide("resolve")
        self.assertNotIn("reply", message.body.lower())
        self.assertIn(NEW_REPORT, message.body)
        self.assertIn(NEW_REPORT, self.status_text())

    def test_while_open_the_email_still_invites_a_reply(self):
        message = self.decide("acknowledge")
        self.assertIn("Read the whole history and reply on your private status page", message.body)
        self.assertNotIn("submit a new report", message.body)
        self.assertNotIn(NEW_REPORT, self.status_text())

    def test_the_templated_closing_replies_do_not_ask_for_a_reply(self):
        for outcome in (Status.DUPLICATE, Status.INFORMATIVE, Status.NOT_APPLICABLE, Status.OUT_OF_SCOPE,
                        Status.SPAM):
            with self.subTest(outcome=outcome):
                self.assertNotIn("reply", closing_reply(self.report, outcome).lower())


class SpamIsNotNamedToTheReporterTests(ClosingTestCase):
    def test_email_status_page_and_export_say_closed(self):
        message = self.decide("close", Status.SPAM, body=closing_reply(self.report, Status.SPAM))
        self.assertEqual(message.subject, "[VDP-2026-0001] Your report has been closed")
        for content in (message.subject, message.body, visible_text(self.html_of(message))):
            self.assertNotIn("spam", STATUS_URL.sub("", content).lower())
        self.assertIn("Status: Closed\n", message.body)
        page = self.status_text().replace(self.token, "")
        self.assertNotIn("spam", page.lower())
        self.assertIn("Closed Closed.", page)  # the banner: label and plain status
        exported = json.loads(self.client.get(f"/status/{self.token}/export.json").content)
        self.assertEqual(exported["status"], "closed")
        self.assertEqual([e["status"] for e in exported["timeline"]], ["new", "closed"])

    def test_staff_still_see_spam(self):
        self.decide("close", Status.SPAM)
        self.assertEqual(self.report.public_status_label, "Closed")
        self.assertEqual(self.report.get_status_display(), "Closed: spam")
        self.login(self.triager)
        self.assertContains(self.client.get(f"/admin/disclosure/report/{self.report.pk}/change/"), "Closed: spam")

    def test_other_outcomes_keep_their_name(self):
        message = self.decide("close", Status.OUT_OF_SCOPE)
        self.assertEqual(message.subject, "[VDP-2026-0001] Your report has been closed: out of scope")
        self.assertIn("Closed: out of scope", self.status_text())
