"""Spam controls without third parties: a honeypot field and a minimum time to fill the form."""

from datetime import timedelta

import time_machine

from disclosure.models import Report
from tests.base import MONDAY_10AM, BaseTestCase, report_data


@time_machine.travel(MONDAY_10AM, tick=False)
class SpamControlTests(BaseTestCase):
    def test_honeypot_field_refuses_the_submission(self):
        response = self.submit(report_data(website="http://cheap-pills.example"))
        self.assertContains(response, "This field must stay empty", status_code=400)
        self.assertFalse(Report.objects.exists())

    def test_a_form_submitted_faster_than_a_person_can_is_refused(self):
        shown = self.blank_form_values()
        data = report_data(shown_at=shown["shown_at"], submission_id=shown["submission_id"])
        response = self.submit(data)
        self.assertContains(response, "faster than anyone", status_code=400)
        self.assertNotContains(response, "Shown at", status_code=400)  # a hidden field's name means nothing here
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
