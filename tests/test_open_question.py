"""A question left open when the team decides anyway: the reporter stops being waited for,
visibly, and an answer that comes later is shown as the answer to that question."""

from datetime import timedelta

import time_machine
from django.conf import settings
from django.core import mail

from disclosure.models import Event, Status
from tests.base import MONDAY_10AM, BaseTestCase, make_report

TUESDAY = MONDAY_10AM + timedelta(days=1)
WEDNESDAY = MONDAY_10AM + timedelta(days=2)
THURSDAY = MONDAY_10AM + timedelta(days=3)


@time_machine.travel(THURSDAY, tick=False)
class OpenQuestionTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        with self.captureOnCommitCallbacks(execute=True):
            self.report, self.token = make_report()
            self.report.request_info(self.triager, "Which browser did you use?", now=TUESDAY)
        mail.outbox.clear()

    def status_page(self):
        return self.client.get(f"/status/{self.token}/")

    def answer(self, body, now=THURSDAY):
        with self.captureOnCommitCallbacks(execute=True):
            return self.report.add_reporter_message(body, now=now)

    def test_triaging_while_waiting_tells_the_reporter_they_are_no_longer_waited_for(self):
        self.assertContains(self.status_page(), "Waiting for you.")
        self.report.triage(self.triager, "high", now=WEDNESDAY)
        event = self.report.events.get(kind=Event.Kind.INFO_NOT_AWAITED)
        self.assertEqual((event.public, event.actor, event.created_at), (True, self.triager, WEDNESDAY))
        self.assertEqual(event.data, {"question_at": TUESDAY.isoformat()})
        page = self.status_page()
        self.assertNotContains(page, "Waiting for you.")
        self.assertContains(page, "No longer waiting for your answer to the team&#x27;s question")

    def test_closing_while_waiting_says_so_too(self):
        self.report.close(self.triager, Status.INFORMATIVE, now=WEDNESDAY)
        self.assertTrue(self.report.events.filter(kind=Event.Kind.INFO_NOT_AWAITED, public=True).exists())

    def test_no_such_event_without_an_open_question(self):
        other, _ = make_report(title="Other")
        other.triage(self.triager, "low", now=WEDNESDAY)
        self.assertFalse(other.events.filter(kind=Event.Kind.INFO_NOT_AWAITED).exists())
        with self.captureOnCommitCallbacks(execute=True):
            self.report.add_reporter_message("Chrome 130.", now=WEDNESDAY)  # answered in time
        self.report.triage(self.triager, "high", now=THURSDAY)
        self.assertFalse(self.report.events.filter(kind=Event.Kind.INFO_NOT_AWAITED).exists())

    def test_a_later_answer_is_shown_as_the_answer_to_that_question(self):
        self.report.triage(self.triager, "high", now=WEDNESDAY)
        event = self.answer("Chrome 130, sorry for the delay.")
        self.assertEqual((event.kind, event.data), (Event.Kind.REPORTER_MESSAGE,
                                                    {"answers_question_at": TUESDAY.isoformat()}))
        self.assertEqual(self.report.status, Status.TRIAGED)  # an answer does not move the report back
        self.assertContains(self.status_page(), "Your answer to the team&#x27;s question of 1 December 2026")
        [team] = self.emails_to(settings.SECURITY_TEAM_EMAIL)
        self.assertIn("answered your question of 1 Dec", team.subject)
        self.login(self.triager)
        self.assertContains(self.client.get(f"/admin/disclosure/report/{self.report.pk}/change/"),
                            "answer to the question of 1 Dec 2026 10:00 GMT")
        # Only the first word after the question is its answer.
        self.assertEqual(self.answer("Also Firefox.").public_label, "Your message")
