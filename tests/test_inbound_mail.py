"""Email to the team's address: what each kind of message becomes (the filing path that
the IMAP poller, the webhooks and ``ingest_email`` share), with raw MIME fixtures."""

import io
import subprocess
import sys
import tempfile
from datetime import timedelta
from unittest import mock

from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.test import override_settings

from disclosure import emails
from disclosure.inbound import tags
from disclosure.inbound.models import InboundMail
from disclosure.models import Channel, Event, OutboundEmail, Report, Status
from tests.base import BaseTestCase, end_of, fresh_env, make_report
from tests.inbound import FRIDAY_1630, fixture, message, take

TEAM = "security@security.example.com"


@override_settings(SECURITY_TEAM_EMAIL=TEAM, DEFAULT_FROM_EMAIL=f"Security team <{TEAM}>",
                   SITE_URL="https://security.example.com", ALLOWED_HOSTS=["security.example.com", "testserver"])
class EmailBecomesReportTests(BaseTestCase):
    def file(self, raw, arrived_at=FRIDAY_1630):
        with self.captureOnCommitCallbacks(execute=True):
            return take(raw, arrived_at=arrived_at)

    def test_a_plain_email_becomes_a_report_with_clocks_from_its_arrival(self):
        row = self.file(fixture("plain.eml"))
        report = Report.objects.get()
        self.assertEqual((row.state, row.outcome, row.report), (InboundMail.State.DONE, "report", report))
        self.assertEqual(report.channel, Channel.EMAIL)
        self.assertEqual(report.title, "SQL injection in /search")
        self.assertIn("' OR 1=1 --", report.description)
        self.assertEqual((report.reporter_email, report.reporter_name), ("ada@researcher.example", "Ada Researcher"))
        # Arrived Friday 16:30: three business days are Mon, Tue, Wed (not counted from the poll).
        self.assertEqual(report.received_at, FRIDAY_1630)
        self.assertEqual(report.ack_due_at, end_of(2026, 12, 2))
        self.assertEqual([a.original_name for a in report.attachments.all()], ["original-message.eml"])
        self.assertEqual(report.attachments.get().read_plain()[0], fixture("plain.eml"))
        self.assertFalse(row.raw)  # the report's attachment is the copy that is kept

    def test_the_receipt_is_a_reply_in_the_researchers_thread_with_a_tagged_reply_to(self):
        self.file(fixture("plain.eml"))
        report = Report.objects.get()
        [receipt] = self.emails_to("ada@researcher.example")
        self.assertEqual(receipt.subject, f"Re: SQL injection in /search [{report.tracking_id}]")
        self.assertEqual(receipt.extra_headers["In-Reply-To"], "<plain-1@researcher.example>")
        self.assertEqual(receipt.extra_headers["References"], "<plain-1@researcher.example>")
        self.assertEqual(receipt.extra_headers["Reply-To"], f"security+{tags.tag_for(report.pk)}@security.example.com")
        self.assertIn(report.tracking_id, receipt.body)
        self.status_token_in(receipt.body)
        self.assertIn("Reply to this email", receipt.body)
        self.assertEqual(len(self.emails_to(TEAM)), 1)  # the team's "new report"

    def test_the_same_message_twice_files_one_report(self):
        for _ in range(2):
            self.file(fixture("plain.eml"))
        self.file(fixture("broken-headers.eml"))  # no Message-ID: keyed on its content
        self.file(fixture("broken-headers.eml"))
        self.assertEqual(Report.objects.count(), 2)
        self.assertEqual(InboundMail.objects.count(), 2)
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)

    def test_attachments_zip_and_a_nested_message_are_kept_with_safe_names(self):
        self.file(fixture("multipart-attachments.eml"))
        report = Report.objects.get()
        self.assertEqual(report.description, "See the attached exploit and screenshot.")
        self.assertEqual(sorted(a.original_name for a in report.attachments.all()),
                         ["exploit.zip", "forwarded-message.eml", "original-message.eml", "screen shot.png"])
        forwarded = report.attachments.get(original_name="forwarded-message.eml").read_plain()[0]
        self.assertIn(b"leaked token", forwarded)

    def test_html_only_mail_becomes_sanitised_text(self):
        self.file(fixture("html-only.eml"))
        report = Report.objects.get()
        self.assertIn("Reflected XSS", report.description)
        self.assertIn("https://app.example.com/?q=%3Cscript%3E", report.description)
        for unsafe in ("<script", "alert('owned')", "<img", "tracker.example", "color: red"):
            self.assertNotIn(unsafe, report.description)
        self.login(self.lead)
        page = self.client.get(f"/admin/disclosure/report/{report.pk}/change/").content.decode()
        self.assertNotIn('href="javascript', page)

    def test_legacy_and_broken_charsets_file_readable_reports(self):
        for name in ("latin1.eml", "shift-jis.eml", "utf7.eml", "broken-headers.eml"):
            self.file(fixture(name))
        titles = dict(Report.objects.values_list("reporter_email", "title"))
        self.assertEqual(titles["jose@example.es"], "Contraseña visible")
        self.assertEqual(titles["tanaka@example.jp"], "脆弱性の報告")
        self.assertEqual(titles["old@example.net"], "UTF-7 report")
        self.assertIn("tail", titles["broken@example.com"])
        self.assertIn("“/login?pw=”", Report.objects.get(reporter_email="jose@example.es").description)
        self.assertIn("ログイン画面", Report.objects.get(reporter_email="tanaka@example.jp").description)
        self.assertIn("Café page leaks €", Report.objects.get(reporter_email="old@example.net").description)
        broken = Report.objects.get(reporter_email="broken@example.com").description
        self.assertIn("“quoted”", broken)
        self.assertNotIn("\x00", broken)

    def test_an_empty_subject_and_body_still_make_a_report(self):
        self.file(message(subject="", body="", message_id=""))
        report = Report.objects.get()
        self.assertEqual(report.title, "Report received by email")
        self.assertIn("no text", report.description)

    def test_an_oversized_message_files_from_its_text_and_the_receipt_says_attachments_were_dropped(self):
        big = b"A" * 120_000
        import base64
        raw = (b"From: ada@researcher.example\r\nTo: security@security.example.com\r\nSubject: Big dump\r\n"
               b"Message-ID: <big-1@researcher.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               b"--b\r\nContent-Type: text/plain\r\n\r\nThe dump is attached.\r\n--b\r\n"
               b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=dump.bin\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(big) + b"\r\n--b--\r\n")
        with override_settings(INBOUND_MAX_BYTES=64 * 1024):
            self.file(raw)
        report = Report.objects.get()
        self.assertEqual(report.description, "The dump is attached.")
        self.assertEqual([a.original_name for a in report.attachments.all()], ["original-headers.eml"])
        self.assertEqual(report.received_at, FRIDAY_1630)
        [receipt] = self.emails_to("ada@researcher.example")
        self.assertIn("attachment(s) were not kept", receipt.body)

    def test_an_attachment_over_the_form_limit_is_dropped_with_a_note(self):
        raw = fixture("multipart-attachments.eml")
        with override_settings(MAX_ATTACHMENT_BYTES=50):
            row = self.file(raw)
        names = sorted(Report.objects.get().attachments.values_list("original_name", flat=True))
        self.assertNotIn("screen shot.png", names)  # 70 bytes
        self.assertIn("exploit.zip", names)
        self.assertIn("screen shot.png was not kept", row.notes)


@override_settings(SECURITY_TEAM_EMAIL=TEAM, DEFAULT_FROM_EMAIL=f"Security team <{TEAM}>",
                   SITE_URL="https://security.example.com", ALLOWED_HOSTS=["security.example.com", "testserver"])
class NeverAReportTests(BaseTestCase):
    def file(self, raw):
        with self.captureOnCommitCallbacks(execute=True):
            return take(raw)

    def test_auto_replies_are_logged_and_ignored(self):
        cases = [fixture("auto-reply.eml"),
                 message(headers=["Precedence: bulk"], message_id="<p1@x.example>"),
                 message(headers=["Precedence: list"], message_id="<p2@x.example>"),
                 message(headers=["X-Autorespond: yes"], message_id="<p3@x.example>")]
        for raw in cases:
            row = self.file(raw)
            self.assertEqual((row.state, row.outcome), (InboundMail.State.DONE, "auto_reply"))
            self.assertTrue(row.raw_encrypted or row.raw)  # kept (sealed when a team key is configured)
        self.assertFalse(Report.objects.exists())
        self.assertEqual(mail.outbox, [])

    def test_auto_submitted_no_is_a_person(self):
        self.file(message(headers=["Auto-Submitted: no"]))
        self.assertEqual(Report.objects.count(), 1)

    def test_our_own_messages_and_mail_servers_are_ignored(self):
        report, _ = make_report()
        sent = OutboundEmail.objects.filter(report=report).first()
        loop = self.file(message(sender=TEAM, message_id=sent.message_id, subject="copy"))
        daemon = self.file(message(sender="MAILER-DAEMON@mx.example", message_id="<d@mx.example>"))
        postmaster = self.file(message(sender="postmaster@mx.example", message_id="<pm@mx.example>"))
        self.assertEqual([loop.outcome, daemon.outcome, postmaster.outcome], ["loop", "mailer_daemon", "mailer_daemon"])
        self.assertEqual(Report.objects.count(), 1)

    def test_a_bounce_marks_our_email_and_flags_the_reporter(self):
        with self.captureOnCommitCallbacks(execute=True):
            report, _ = make_report()
        receipt = OutboundEmail.objects.get(report=report, kind=OutboundEmail.Kind.RECEIPT)
        row = self.file(fixture("dsn-bounce.eml", original_id=receipt.message_id))
        self.assertEqual((row.outcome, row.bounced_email, row.report), ("bounce", receipt, report))
        receipt.refresh_from_db()
        report.refresh_from_db()
        self.assertEqual(receipt.bounced_at, FRIDAY_1630)
        self.assertIn("5.1.1", receipt.bounce_detail)
        self.assertIsNotNone(report.reporter_email_bounced_at)
        self.assertTrue(report.events.filter(kind=Event.Kind.EMAIL_BOUNCED).exists())
        self.assertEqual(Report.objects.count(), 1)
        self.login(self.lead)
        self.assertContains(self.client.get("/admin/disclosure/report/"), "address bounced")

    def test_a_bounce_of_mail_we_did_not_send_is_only_logged(self):
        row = self.file(fixture("dsn-bounce.eml", original_id="<someone-else@example.com>"))
        self.assertEqual(row.outcome, "mailer_daemon")
        self.assertFalse(Report.objects.exists())


@override_settings(SECURITY_TEAM_EMAIL=TEAM, DEFAULT_FROM_EMAIL=f"Security team <{TEAM}>",
                   SITE_URL="https://security.example.com", ALLOWED_HOSTS=["security.example.com", "testserver"])
class RepliesThreadBackTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        with self.captureOnCommitCallbacks(execute=True):
            self.report, _ = make_report()
        self.receipt = OutboundEmail.objects.get(report=self.report, kind=OutboundEmail.Kind.RECEIPT)
        mail.outbox.clear()

    def file(self, raw, arrived_at=FRIDAY_1630 + timedelta(days=3)):
        with self.captureOnCommitCallbacks(execute=True):
            return take(raw, arrived_at=arrived_at)

    def test_every_email_to_the_reporter_has_a_tagged_reply_to_and_the_team_keeps_the_plain_one(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.report.acknowledge(self.triager)
        [update] = self.emails_to("ada@researcher.example")
        self.assertEqual(update.extra_headers["Reply-To"], tags.reply_address(self.report))
        self.assertRegex(update.extra_headers["Reply-To"], r"^security\+[a-z2-7]{20}@security\.example\.com$")
        with self.captureOnCommitCallbacks(execute=True):
            self.report.add_reporter_message("hello")
        [team] = self.emails_to(TEAM)
        self.assertEqual(team.extra_headers["Reply-To"], TEAM)

    def test_a_reply_to_the_receipt_becomes_a_reporter_message_and_ends_the_pause(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.report.request_info(self.triager, "Which browser?")
        mail.outbox.clear()
        row = self.file(fixture("reply.eml", to=TEAM, in_reply_to=self.receipt.message_id))
        self.report.refresh_from_db()
        self.assertEqual(row.outcome, "reply")
        self.assertEqual(self.report.status, Status.ACKNOWLEDGED)
        event = self.report.events.get(kind=Event.Kind.INFO_PROVIDED)
        self.assertEqual(event.data["channel"], "email")
        body = event.message.body
        self.assertIn("the cookie is not HttpOnly", body)
        self.assertNotIn("Thank you for reporting", body)  # quoted history trimmed
        self.assertEqual([a.original_name for a in event.message.attachments.all()], ["original-message.eml"])
        self.assertEqual(len(self.emails_to(TEAM)), 1)  # the team is told, as for a status-page message
        self.assertEqual(Report.objects.count(), 1)

    def test_the_reply_tag_alone_finds_the_report(self):
        raw = fixture("reply.eml", to=tags.reply_address(self.report), in_reply_to="<unknown@client.example>")
        row = self.file(raw)
        self.assertEqual((row.outcome, row.report), ("reply", self.report))

    def test_a_forged_tag_is_a_new_report(self):
        raw = fixture("reply.eml", to="security+aaaaaaaaaaaaaaaaaaaa@security.example.com",
                      in_reply_to="<unknown@client.example>")
        Report.objects.filter(pk=self.report.pk).update(reply_tag="aaaaaaaaaaaaaaaaaaaa")
        row = self.file(raw)
        self.assertEqual(row.outcome, "report")
        self.assertEqual(Report.objects.count(), 2)

    def test_a_reply_from_another_address_is_flagged_and_does_not_answer_the_question(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.report.request_info(self.triager, "Which browser?")
        row = self.file(fixture("reply-other-sender.eml", to=TEAM, in_reply_to=self.receipt.message_id))
        self.report.refresh_from_db()
        self.assertEqual(row.outcome, "other_sender")
        self.assertEqual(self.report.status, Status.NEEDS_INFO)
        event = self.report.events.get(kind=Event.Kind.REPORTER_MESSAGE)
        self.assertTrue(event.data["other_sender"])
        self.assertIn("mallory@elsewhere.example", event.message.body)

    def test_a_reply_to_a_closed_report_is_kept_for_staff(self):
        self.report.close(self.triager, Status.INFORMATIVE)
        row = self.file(fixture("reply.eml", to=TEAM, in_reply_to=self.receipt.message_id))
        self.assertEqual(row.outcome, "closed")
        self.assertTrue(self.report.events.filter(kind=Event.Kind.NOTE).exists())
        self.assertFalse(self.report.messages.filter(kind="from_reporter").exists())

    def test_a_reply_naming_the_reports_thread_id_is_filed(self):
        raw = fixture("reply.eml", to=TEAM, in_reply_to=emails.thread_id(self.report))
        self.assertEqual(self.file(raw).outcome, "reply")


@override_settings(SECURITY_TEAM_EMAIL=TEAM, SITE_URL="https://security.example.com",
                   ALLOWED_HOSTS=["security.example.com", "testserver"])
class AbuseTests(BaseTestCase):
    def file(self, raw, arrived_at=FRIDAY_1630):
        with self.captureOnCommitCallbacks(execute=True):
            return take(raw, arrived_at=arrived_at)

    @override_settings(INBOUND_SENDER_REPORTS_PER_HOUR=2)
    def test_over_the_per_sender_limit_reports_are_held_without_a_receipt(self):
        rows = [self.file(message(message_id=f"<flood-{n}@x.example>"), FRIDAY_1630 + timedelta(minutes=n))
                for n in range(3)]
        self.assertEqual([row.outcome for row in rows], ["report", "report", "held"])
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 2)
        held = rows[2].report
        self.assertEqual(held.intake_hold, "rate_limited")
        # An hour later the sender may report again.
        later = self.file(message(message_id="<flood-later@x.example>"), FRIDAY_1630 + timedelta(hours=2))
        self.assertEqual(later.outcome, "report")

    @override_settings(INBOUND_REPORTS_PER_HOUR=2)
    def test_over_the_global_limit_reports_are_held(self):
        outcomes = [self.file(message(sender=f"r{n}@x.example", message_id=f"<g{n}@x.example>")).outcome
                    for n in range(3)]
        self.assertEqual(outcomes, ["report", "report", "held"])

    @override_settings(INBOUND_TRUSTED_AUTHSERV_ID="mx.security.example.com")
    def test_dmarc_failure_from_our_server_is_likely_spam_without_receipt(self):
        failed = self.file(message(message_id="<d1@x.example>", headers=[
            "Authentication-Results: mx.security.example.com; spf=fail; dmarc=fail (p=reject) header.from=x.example"]))
        forged = self.file(message(message_id="<d2@x.example>", headers=[
            "Authentication-Results: attacker.example; dmarc=fail"]))
        self.assertEqual((failed.outcome, forged.outcome), ("spam", "report"))
        self.assertEqual(failed.report.intake_hold, "dmarc_failed")
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)


class IngestEmailCommandTests(BaseTestCase):
    def run_command(self, raw: bytes):
        stdin = io.TextIOWrapper(io.BytesIO(raw))
        out = io.StringIO()
        with mock.patch.object(sys, "stdin", stdin), self.captureOnCommitCallbacks(execute=True):
            call_command("ingest_email", stdout=out)
        return out.getvalue()

    def test_a_piped_message_is_filed_with_the_time_it_ran(self):
        output = self.run_command(fixture("plain.eml"))
        self.assertIn("Filed, New report", output)
        report = Report.objects.get()
        self.assertLess(abs((report.received_at - InboundMail.objects.get().arrived_at).total_seconds()), 1)
        self.assertNotEqual(report.received_at, FRIDAY_1630)  # not the Date header

    def test_an_ignored_message_exits_zero(self):
        self.assertIn("auto-reply", self.run_command(fixture("auto-reply.eml")))

    def test_the_mta_is_told_to_retry_when_the_database_is_down(self):
        with tempfile.TemporaryDirectory() as data_dir:
            result = subprocess.run([sys.executable, "manage.py", "ingest_email"], input=fixture("plain.eml"),
                                    cwd=settings.BASE_DIR, capture_output=True, timeout=120, env=fresh_env(
                                        data_dir, DATABASE_URL="postgres://nobody@127.0.0.1:9/none", DEBUG="true"))
        self.assertEqual(result.returncode, 75, result.stderr)
        self.assertIn(b"the MTA should retry", result.stderr)


@override_settings(SECURITY_TEAM_EMAIL=TEAM)
class StaffSeeInboundMailTests(BaseTestCase):
    def test_the_inbound_mail_log_and_the_queues_channel_column_and_filter(self):
        with self.captureOnCommitCallbacks(execute=True):
            take(fixture("plain.eml"))
            take(fixture("auto-reply.eml"))
            make_report(title="Form report")
        self.login(self.lead)
        log = self.client.get("/admin/disclosure/inboundmail/")
        self.assertContains(log, "Ignored: auto-reply")
        self.assertContains(log, "New report")
        row = InboundMail.objects.get(outcome="auto_reply")
        detail = self.client.get(f"/admin/disclosure/inboundmail/{row.pk}/change/")
        self.assertContains(detail, "Auto-Submitted: auto-replied")
        self.assertEqual(self.client.get("/admin/disclosure/inboundmail/add/").status_code, 403)
        emailed = self.client.get("/admin/disclosure/report/?channel__exact=email").content.decode()
        self.assertIn("SQL injection in /search", emailed)
        self.assertNotIn("Form report", emailed)
        self.assertIn("channel", self.client.get("/admin/disclosure/report/").content.decode().lower())

    def test_exports_name_the_channel(self):
        from disclosure.export import CSV_FIELDS, csv_rows

        with self.captureOnCommitCallbacks(execute=True):
            take(fixture("plain.eml"))
        [values] = list(csv_rows(Report.objects.all()))
        self.assertEqual(values[CSV_FIELDS.index("channel")], "email")

    def test_security_txt_still_lists_the_mailbox_first(self):
        body = self.client.get("/.well-known/security.txt").content.decode()
        contacts = [line.split(":", 1)[1].strip() for line in body.splitlines() if line.startswith("Contact:")]
        self.assertEqual(contacts[0], f"mailto:{TEAM}")
