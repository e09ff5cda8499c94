"""A reporter who lost their status link gets fresh ones by email; the answer reveals nothing."""

import re

import time_machine
from django.core import mail

from disclosure.models import StatusLink
from tests.base import MONDAY_10AM, BaseTestCase, make_report


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
