"""Property-based tests (hypothesis): no input to a public form or the status page gives a
500 or leaves anything half-saved."""

from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from disclosure.models import Attachment, Event, Message, OutboundEmail, Report
from tests.base import make_report

PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Any text, including control characters, surrogate-free unicode, very long strings.
ANY_TEXT = st.text(max_size=300) | st.text(alphabet=st.characters(codec="utf-8"), min_size=190, max_size=260)
FIELDS = ["title", "description", "asset", "vulnerability_type", "steps_to_reproduce", "impact", "reporter_name",
          "reporter_email", "credit", "credit_name", "submission_id", "website", "shown_at"]


def counts():
    return tuple(model.objects.count() for model in (Report, Event, Message, Attachment, OutboundEmail))


@override_settings(RATELIMIT_ENABLE=False)  # hundreds of examples from one address; limits are tested elsewhere
class PublicFormProperties(TestCase):
    @PROFILE
    @given(st.dictionaries(st.sampled_from(FIELDS), ANY_TEXT))
    def test_report_form_never_fails_or_half_saves(self, data):
        before = counts()
        response = self.client.post("/report/", data)
        self.assertIn(response.status_code, (302, 400))
        if response.status_code == 400:
            self.assertEqual(counts(), before)
        else:
            self.assertEqual(Report.objects.count(), before[0] + 1)
            self.assertEqual(Event.objects.count(), before[1] + 1)

    @PROFILE
    @given(st.binary(max_size=400))
    def test_raw_bodies_never_fail(self, body):
        before = counts()
        response = self.client.post("/report/", body, content_type="application/x-www-form-urlencoded")
        self.assertIn(response.status_code, (302, 400))
        if response.status_code == 400:
            self.assertEqual(counts(), before)

    @PROFILE
    @given(st.text(max_size=120))
    def test_status_page_never_fails_for_any_token(self, token):
        from urllib.parse import quote

        response = self.client.get(f"/status/{quote(token, safe='')}/")
        self.assertIn(response.status_code, (404, 301, 302))

    @PROFILE
    @given(st.dictionaries(st.sampled_from(["body", "credit", "credit_name", "email"]), ANY_TEXT))
    def test_follow_up_credit_and_lost_link_forms_never_fail(self, data):
        report, token = make_report()
        before = counts()
        for url in (f"/status/{token}/", f"/status/{token}/credit/", "/status/"):
            response = self.client.post(url, data)
            self.assertIn(response.status_code, (302, 400), url)
        if not data.get("body", "").strip():
            self.assertEqual(Message.objects.count(), before[2])
