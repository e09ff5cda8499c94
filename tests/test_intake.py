"""The intake loop, driven through HTTP: form, confirmation, receipt email, status page."""

import unittest
from datetime import timedelta

import time_machine
from django.core import mail
from django.db import connection
from django.test import Client, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext

from disclosure.models import Attachment, Event, OutboundEmail, Report, Status, StatusLink
from tests.base import MONDAY_10AM, BaseTestCase, report_data, run_at_once, upload, without_rate_limit_store


@time_machine.travel(MONDAY_10AM, tick=False)
class ReportFormTests(BaseTestCase):
    def test_form_offers_the_public_field_names(self):
        response = self.client.get("/report/")
        self.assertEqual(response.status_code, 200)
        for name in ("title", "description", "asset", "reporter_name", "reporter_email", "attachments",
                     "vulnerability_type", "steps_to_reproduce", "impact", "credit", "credit_name"):
            self.assertContains(response, f'name="{name}"')
        self.assertContains(response, 'enctype="multipart/form-data"')
        self.assertContains(response, "csrfmiddlewaretoken")

    def test_only_title_and_description_are_required(self):
        response = self.submit({"title": "Open redirect", "description": "See /next?url=evil"})
        self.assertRedirects(response, "/report/received/", fetch_redirect_response=False)
        report = Report.objects.get()
        self.assertEqual(report.reporter_email, "")
        self.assertEqual(report.credit, "none")

    def test_missing_required_fields_are_reported_on_the_form(self):
        response = self.submit({"title": "", "description": ""})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "Please correct", status_code=400)
        summary = '<li><a href="#id_title">Title</a>: This field is required.</li>'
        self.assertContains(response, summary, status_code=400)
        self.assertContains(response, "id=\"id_description_error\">This field is required.", status_code=400)
        self.assertFalse(Report.objects.exists())

    def test_submission_creates_report_event_link_and_redirects(self):
        response = self.submit(files=[upload("poc.html", b"<script>alert(1)</script>", "text/html")])
        self.assertRedirects(response, "/report/received/", fetch_redirect_response=False)
        report = Report.objects.get()
        self.assertEqual(report.tracking_id, "VDP-2026-0001")
        self.assertEqual(report.status, Status.NEW)
        self.assertEqual(report.received_at, MONDAY_10AM)
        self.assertEqual(report.title, "Stored XSS in profile page")
        self.assertEqual(list(report.events.values_list("kind", flat=True)), [Event.Kind.RECEIVED])
        self.assertEqual(report.status_links.count(), 2)  # one shown on screen, one in the receipt
        attachment = report.attachments.get()
        self.assertEqual(attachment.original_name, "poc.html")
        self.assertEqual(attachment.size, 25)

    def test_confirmation_shows_tracking_id_and_a_working_status_link(self):
        self.submit()
        page = self.client.get("/report/received/")
        self.assertContains(page, "VDP-2026-0001")
        self.assertContains(page, "Thursday 3 December 2026, 23:59 GMT")  # acknowledgement due
        token = self.status_token_in(page.content.decode())
        status_page = self.client.get(f"/status/{token}/")
        self.assertContains(status_page, "VDP-2026-0001")
        # Reloading the confirmation shows the same page and creates nothing.
        again = self.client.get("/report/received/")
        self.assertEqual(self.status_token_in(again.content.decode()), token)
        self.assertEqual(Report.objects.count(), 1)

    def test_confirmation_without_a_submission_is_a_404(self):
        response = self.client.get("/report/received/")
        self.assertContains(response, "Nothing to show here", status_code=404)

    def test_tampered_confirmation_cookie_is_refused(self):
        self.submit()
        self.client.cookies["vdp_receipt"] = self.client.cookies["vdp_receipt"].value[:-2] + "xx"
        self.assertEqual(self.client.get("/report/received/").status_code, 404)

    def test_tracking_ids_are_sequential_per_year(self):
        for _ in range(3):
            self.submit()
        self.assertEqual(sorted(Report.objects.values_list("tracking_id", flat=True)),
                         ["VDP-2026-0001", "VDP-2026-0002", "VDP-2026-0003"])
        with time_machine.travel("2027-01-04 09:00Z", tick=False):
            self.submit()
        self.assertTrue(Report.objects.filter(tracking_id="VDP-2027-0001").exists())

    @override_settings(TRACKING_ID_PREFIX="SEC")
    def test_tracking_id_prefix_is_a_setting(self):
        self.submit()
        self.assertEqual(Report.objects.get().tracking_id, "SEC-2026-0001")

    def test_a_made_up_submission_id_is_ignored(self):
        # Scripts (or an attacker) reusing a value the server did not issue get no shortcut
        # to somebody else's report: each post is a new report.
        data = report_data(submission_id="hard-coded-in-a-script")
        self.submit(data)
        self.submit(data)
        self.assertEqual(Report.objects.count(), 2)

    def test_double_submit_of_the_same_form_creates_one_report(self):
        data = report_data(submission_id=self.blank_form_values()["submission_id"])
        first = self.submit(data)
        second = self.submit(data)
        self.assertEqual(Report.objects.count(), 1)
        self.assertRedirects(second, "/report/received/", fetch_redirect_response=False)
        self.assertEqual(first.status_code, 302)
        # The second answer still leads to a working confirmation and status link.
        page = self.client.get("/report/received/")
        self.assertContains(page, "VDP-2026-0001")
        self.assertEqual(self.client.get(f"/status/{self.status_token_in(page.content.decode())}/").status_code, 200)
        # Only one receipt went out.
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)

    def test_each_rendered_form_carries_a_fresh_nonce(self):
        first = self.blank_form_values()["submission_id"]
        second = self.blank_form_values()["submission_id"]
        self.assertGreaterEqual(len(first), 24)
        self.assertNotEqual(first, second)

    def test_no_ip_address_or_user_agent_is_stored(self):
        self.submit(REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="curl/8.0 research-bot")
        report = Report.objects.get()
        for field in report._meta.concrete_fields:
            value = str(getattr(report, field.attname))
            self.assertNotIn("203.0.113.9", value)
            self.assertNotIn("research-bot", value)


@time_machine.travel(MONDAY_10AM, tick=False)
class ReceiptEmailTests(BaseTestCase):
    def test_reporter_receives_a_receipt_with_text_html_and_status_link(self):
        self.submit()
        [receipt] = self.emails_to("ada@researcher.example")
        self.assertEqual(receipt.subject, "[VDP-2026-0001] We received your vulnerability report")
        self.assertIn("Tracking ID: VDP-2026-0001", receipt.body)
        self.assertIn("Thursday 3 December 2026, 23:59 GMT", receipt.body)
        self.assertIn("Monday 14 December 2026, 23:59 GMT", receipt.body)
        self.assertIn("3 business days", receipt.body)
        self.assertIn("10 business days", receipt.body)
        html = self.html_of(receipt)
        self.assertIn("VDP-2026-0001", html)
        token = self.status_token_in(receipt.body)
        self.assertEqual(self.status_token_in(html), token)
        self.assertEqual(receipt.extra_headers["References"], receipt.extra_headers["In-Reply-To"])
        self.assertContains(self.client.get(f"/status/{token}/"), "Stored XSS in profile page")

    def test_receipt_is_sent_after_commit_by_the_queue_not_in_the_request(self):
        self.submit(execute=False)
        self.assertEqual(mail.outbox, [])
        self.assertEqual(OutboundEmail.objects.filter(state="pending").count(), 2)

    def test_team_is_told_about_a_new_report_without_its_content(self):
        self.submit()
        [team] = self.emails_to("security@localhost")
        self.assertEqual(team.subject, "[VDP-2026-0001] New report: Stored XSS in profile page")
        self.assertIn("/admin/disclosure/report/", team.body)
        self.assertNotIn("renders", team.body)

    def test_anonymous_reporter_gets_no_email_but_a_working_link(self):
        self.submit(report_data(reporter_email="", reporter_name="", credit="none", credit_name=""))
        self.assertEqual([m.to for m in mail.outbox], [["security@localhost"]])
        page = self.client.get("/report/received/")
        self.assertEqual(self.client.get(f"/status/{self.status_token_in(page.content.decode())}/").status_code, 200)

    def test_every_message_is_recorded_with_its_delivery_state(self):
        self.submit()
        rows = OutboundEmail.objects.order_by("kind")
        self.assertEqual([(r.kind, r.state, r.attempts) for r in rows],
                         [("receipt", "sent", 1), ("team-new-report", "sent", 1)])

    def test_no_usable_status_token_is_stored(self):
        self.submit()
        page_token = self.status_token_in(self.client.get("/report/received/").content.decode())
        mail_token = self.status_token_in(self.emails_to("ada@researcher.example")[0].body)
        receipt = OutboundEmail.objects.get(kind="receipt")
        self.assertIn(OutboundEmail.STATUS_LINK_MARK, receipt.body_text)
        for token in (page_token, mail_token):
            self.assertNotIn(token, receipt.body_text + receipt.body_html)
            self.assertFalse(StatusLink.objects.filter(token_hash=token).exists())
            self.assertEqual(StatusLink.find_report(token), Report.objects.get())


@time_machine.travel(MONDAY_10AM, tick=False)
class StatusPageTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.submit()
        self.token = self.status_token_in(self.client.get("/report/received/").content.decode())
        self.url = f"/status/{self.token}/"
        self.report = Report.objects.get()

    def test_status_page_shows_status_deadlines_and_timeline(self):
        response = self.client.get(self.url)
        self.assertContains(response, "VDP-2026-0001")
        self.assertContains(response, "The security team has not acknowledged it yet.")
        self.assertContains(response, "Thursday 3 December 2026, 23:59 GMT")
        self.assertContains(response, "Report received")
        self.assertEqual(response["Cache-Control"], "no-store, private")
        self.assertIn("noindex", response["X-Robots-Tag"])

    def test_reporter_content_is_rendered_inert(self):
        self.assertNotIn("<script>", self.client.get(self.url).content.decode())
        response = self.client.get(f"{self.url}submitted/").content.decode()
        self.assertNotIn("<script>alert(1)</script>", response)
        self.assertIn("&lt;script&gt;", response)

    def test_unknown_token_gets_the_same_404_as_any_missing_page(self):
        wrong = self.client.get("/status/" + "A" * 43 + "/")
        missing = self.client.get("/no-such-page/")
        self.assertEqual(wrong.status_code, 404)
        self.assertEqual(wrong.content, missing.content)
        self.assertEqual(self.client.get("/status/short/").status_code, 404)

    def test_revoked_link_stops_working(self):
        StatusLink.objects.update(revoked_at=MONDAY_10AM)
        self.assertEqual(self.client.get(self.url).status_code, 404)

    def test_a_view_changes_nothing_and_costs_the_same_few_queries_each_time(self):
        before = (Report.objects.get().updated_at, Event.objects.count(), OutboundEmail.objects.count())
        runs = []
        for _ in range(2):
            with CaptureQueriesContext(connection) as run:
                page = self.client.get(self.url)
            # The rate-limit block is looked up in the counter store too (a table without Redis).
            runs.append(without_rate_limit_store(run))
        # The report (through the link), its public events with their messages, and the
        # programme's contact address (files are read once there are messages).
        self.assertEqual(len(runs[0]), 3, runs[0])
        self.assertEqual(len(runs[1]), 3, runs[1])
        self.assertTrue(all(q.startswith("SELECT") for q in runs[0] + runs[1]))
        self.assertContains(page, "VDP-2026-0001")
        after = (Report.objects.get().updated_at, Event.objects.count(), OutboundEmail.objects.count())
        self.assertEqual(before, after)

    def test_any_change_to_the_report_shows_on_the_next_view(self):
        self.assertContains(self.client.get(self.url), "Received. The security team has not acknowledged it yet.")
        Report.objects.filter(pk=self.report.pk).update(title="Renamed by a queryset update", cve_id="CVE-2026-4242")
        page = self.client.get(self.url)
        self.assertContains(page, "Renamed by a queryset update")
        self.assertContains(page, "CVE-2026-4242")
        self.login(self.triager)
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post(f"/admin/disclosure/report/{self.report.pk}/act/acknowledge/")
        self.client.logout()
        self.assertContains(self.client.get(self.url), "Acknowledged. The security team is assessing it.")

    def test_reporter_sends_a_follow_up_with_files(self):
        mail.outbox.clear()
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(self.url, {"body": "Also affects **/settings**.",
                                                   "attachments": [upload("more.png", b"\x89PNG...", "image/png")]})
        self.assertRedirects(response, self.url, fetch_redirect_response=False)
        page = self.client.get(self.url)
        self.assertContains(page, "Your message was sent to the security team.")
        self.assertContains(page, "<strong>/settings</strong>", html=True)
        self.assertContains(page, "more.png")
        message = self.report.messages.get()
        self.assertEqual(message.kind, "from_reporter")
        self.assertEqual(message.attachments.get().original_name, "more.png")
        self.assertEqual(self.report.events.last().kind, Event.Kind.REPORTER_MESSAGE)
        [team] = mail.outbox
        self.assertEqual(team.subject, "[VDP-2026-0001] The reporter sent a message")

    def test_empty_follow_up_is_refused_with_a_message(self):
        response = self.client.post(self.url, {"body": ""})
        self.assertContains(response, "This field is required.", status_code=400)
        self.assertFalse(self.report.messages.exists())

    def test_closed_report_takes_no_more_messages(self):
        Report.objects.filter(pk=self.report.pk).update(status=Status.SPAM)
        response = self.client.post(self.url, {"body": "hello?"})
        self.assertContains(response, "This report is closed", status_code=400)
        self.assertFalse(self.report.messages.exists())

    def test_reporter_downloads_attachment_as_a_download(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post(self.url, {"body": "file", "attachments": [upload("x.html", b"<h1>x</h1>", "text/html")]})
        attachment = Attachment.objects.get()
        response = self.client.get(f"{self.url}files/{attachment.pk}/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "application/octet-stream")
        self.assertEqual(response["X-Content-Type-Options"], "nosniff")
        self.assertTrue(response["Content-Disposition"].startswith("attachment;"))
        self.assertEqual(b"".join(response.streaming_content), b"<h1>x</h1>")

    def test_attachment_of_another_report_is_not_reachable(self):
        other, _ = Report.submit(fields=report_data(), files=[upload()])
        attachment = other.attachments.get()
        self.assertEqual(self.client.get(f"{self.url}files/{attachment.pk}/").status_code, 404)


class CsrfTests(BaseTestCase):
    def test_missing_csrf_token_gets_a_friendly_403_and_saves_nothing(self):
        client = Client(enforce_csrf_checks=True)
        response = client.post("/report/", report_data())
        self.assertContains(response, "Your form could not be accepted", status_code=403)
        self.assertFalse(Report.objects.exists())

    @override_settings(MIN_FORM_SECONDS=0)
    def test_the_token_on_the_blank_form_is_valid(self):
        client = Client(enforce_csrf_checks=True)
        self.client = client
        values = self.blank_form_values()
        self.assertNotIn("PLACEHOLDER", client.get("/report/").content.decode())
        with self.captureOnCommitCallbacks(execute=True):
            response = client.post("/report/", {**report_data(), **values})
        self.assertEqual(response.status_code, 302)

    def test_wrong_csrf_token_is_refused(self):
        client = Client(enforce_csrf_checks=True)
        client.get("/report/")
        response = client.post("/report/", {**report_data(), "csrfmiddlewaretoken": "x" * 64})
        self.assertEqual(response.status_code, 403)
        self.assertFalse(Report.objects.exists())


class OverdueOnStatusPageTests(BaseTestCase):
    def test_the_reporter_sees_when_we_are_late(self):
        from tests.base import make_report

        report, token = make_report()
        with time_machine.travel(MONDAY_10AM + timedelta(days=5), tick=False):
            page = self.client.get(f"/status/{token}/")
        self.assertContains(page, "Overdue: it was due by Thursday 3 December 2026, 23:59 GMT. We are sorry")


@unittest.skipUnless(connection.vendor == "postgresql", "needs concurrent transactions (PostgreSQL)")
class DoubleClickRaceTests(TransactionTestCase):
    def test_two_simultaneous_posts_of_one_form_make_one_report(self):
        from disclosure.forms import new_submission_id, verified_submission_id

        key = verified_submission_id(new_submission_id())
        results = run_at_once(lambda: Report.submit(fields=report_data(), submission_key=key))
        self.assertEqual(Report.objects.count(), 1)
        for report, token in results:
            self.assertEqual(StatusLink.find_report(token), Report.objects.get())
