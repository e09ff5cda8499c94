"""Mail providers' inbound webhooks (anymail), with each provider's documented payload shape."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

from django.test import override_settings

from disclosure.inbound.models import InboundMail
from disclosure.models import Channel, Report
from tests.base import BaseTestCase
from tests.inbound import fixture, take

SECRET = "hook-user:hook-password-123"
AUTH = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(SECRET.encode()).decode()}
SIGNING_KEY = "mailgun-signing-key"


@override_settings(ANYMAIL={"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY})
class InboundWebhookTests(BaseTestCase):
    def post(self, url, *, auth=True, **kwargs):
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(url, **kwargs, **(AUTH if auth else {}))

    def postmark(self, raw: bytes, **kwargs):
        payload = {
            "FromName": "Ada Researcher", "MessageStream": "inbound",
            "From": "ada@researcher.example",
            "FromFull": {"Email": "ada@researcher.example", "Name": "Ada Researcher", "MailboxHash": ""},
            "To": "security@security.example.com",
            "ToFull": [{"Email": "security@security.example.com", "Name": "", "MailboxHash": ""}],
            "OriginalRecipient": "security@security.example.com",
            "Subject": "SQL injection in /search", "MessageID": "22c74902-a0c1-4511-804f-341342852c90",
            "Date": "Fri, 27 Nov 2026 16:30:00 +0000", "TextBody": "ignored when RawEmail is present",
            "Headers": [{"Name": "Return-Path", "Value": "<ada@researcher.example>"}],
            "Attachments": [], "RawEmail": raw.decode(),
        }
        return self.post("/anymail/postmark/inbound/", data=json.dumps(payload), content_type="application/json",
                         **kwargs)

    def test_postmark_files_a_report_through_the_queue(self):
        response = self.postmark(fixture("plain.eml"))
        self.assertEqual(response.status_code, 200)
        report = Report.objects.get()
        row = InboundMail.objects.get()
        self.assertEqual((row.source, row.source_detail, row.outcome), ("webhook", "Postmark", "report"))
        self.assertEqual(report.channel, Channel.EMAIL)
        self.assertEqual(report.title, "SQL injection in /search")
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)

    def test_a_message_with_megabytes_of_attachments_is_filed_not_refused(self):
        # Django refuses request bodies over 2.5 MB read into memory by default; a webhook
        # carries the whole email, attachments included (MAX_REQUEST_BYTES is the one cap).
        capture = base64.encodebytes(bytes(range(256)) * 12_000).decode()  # a 3 MB pcap, base64 in the mail
        raw = ("From: Ada Researcher <ada@researcher.example>\r\nTo: security@security.example.com\r\n"
               "Subject: Traffic capture of the leak\r\nMessage-ID: <big-1@researcher.example>\r\n"
               "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               "--b\r\nContent-Type: text/plain\r\n\r\nThe capture is attached.\r\n"
               "--b\r\nContent-Type: application/vnd.tcpdump.pcap; name=leak.pcap\r\n"
               "Content-Disposition: attachment; filename=leak.pcap\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               f"{capture}\r\n--b--\r\n").encode()
        self.assertGreater(len(raw), 3 * 1024 * 1024)
        self.assertEqual(self.postmark(raw).status_code, 200)
        report = Report.objects.get()
        self.assertEqual(report.title, "Traffic capture of the leak")
        self.assertEqual(report.attachments.get(original_name="leak.pcap").size, 256 * 12_000)

    def test_postmark_parsed_fields_without_raw_email_are_filed_too(self):
        payload = {"FromFull": {"Email": "eve@example.org", "Name": "Eve"},
                   "ToFull": [{"Email": "security@security.example.com", "Name": ""}],
                   "Subject": "Open redirect", "TextBody": "https://app.example.com/go?to=evil",
                   "HtmlBody": "", "MessageID": "0c1c3d5e", "Date": "Mon, 30 Nov 2026 10:00:00 +0000",
                   "Headers": [{"Name": "Message-ID", "Value": "<pm-parsed@example.org>"}],
                   "Attachments": [{"Name": "poc.txt", "Content": base64.b64encode(b"poc").decode(),
                                    "ContentType": "text/plain", "ContentLength": 3}]}
        self.post("/anymail/postmark/inbound/", data=json.dumps(payload), content_type="application/json")
        report = Report.objects.get()
        self.assertEqual((report.reporter_email, report.title), ("eve@example.org", "Open redirect"))
        self.assertIn("poc.txt", list(report.attachments.values_list("original_name", flat=True)))

    def test_a_retry_of_the_same_webhook_files_nothing_twice_and_neither_does_the_same_mail_by_pipe(self):
        self.postmark(fixture("plain.eml"))
        self.postmark(fixture("plain.eml"))
        with self.captureOnCommitCallbacks(execute=True):
            take(fixture("plain.eml"))
        self.assertEqual(Report.objects.count(), 1)
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)

    def test_without_the_secret_nothing_is_filed(self):
        response = self.postmark(fixture("plain.eml"), auth=False)
        self.assertEqual(response.status_code, 400)
        self.assertFalse(InboundMail.objects.exists())

    def test_mailgun_raw_mime_with_its_signature_and_timestamp(self):
        timestamp, token = "1795797000", "a" * 50  # 2026-11-27 16:30 UTC
        signature = hmac.new(SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
        data = {"recipient": "security@security.example.com", "sender": "bob@hacker.example",
                "from": "Bob Hacker <bob@hacker.example>", "subject": "RCE with proof of concept",
                "body-mime": fixture("multipart-attachments.eml").decode(),
                "timestamp": timestamp, "token": token, "signature": signature}
        self.assertEqual(self.post("/anymail/mailgun/inbound_mime/", data=data).status_code, 200)
        report = Report.objects.get()
        self.assertEqual(report.received_at, datetime(2026, 11, 27, 16, 30, tzinfo=UTC))  # the provider's time
        self.assertIn("exploit.zip", list(report.attachments.values_list("original_name", flat=True)))
        data["signature"] = "0" * 64
        data["token"] = "b" * 50
        self.assertEqual(self.post("/anymail/mailgun/inbound_mime/", data=data).status_code, 400)
        self.assertEqual(Report.objects.count(), 1)

    def test_amazon_ses_sns_notification_with_the_message_content(self):
        ses_event = {
            "notificationType": "Received",
            "mail": {"timestamp": "2026-11-27T16:30:00.000Z", "source": "ada@researcher.example",
                     "messageId": "jili9m351il3gkburn7o2f0u6788stij94c8ld01",
                     "destination": ["security@security.example.com"]},
            "receipt": {"timestamp": "2026-11-27T16:30:00.000Z", "recipients": ["security@security.example.com"],
                        "spamVerdict": {"status": "PASS"}, "dmarcVerdict": {"status": "PASS"},
                        "action": {"type": "SNS", "topicArn": "arn:aws:sns:us-east-1:123:inbound",
                                   "encoding": "BASE64"}},
            "content": base64.b64encode(fixture("html-only.eml")).decode(),
        }
        sns = {"Type": "Notification", "MessageId": "8f1b3c3f-5e9e-5c77-9b77-0c0f7c0f5c3a",
               "TopicArn": "arn:aws:sns:us-east-1:123:inbound", "Subject": "Amazon SES Email Receipt Notification",
               "Message": json.dumps(ses_event), "Timestamp": "2026-11-27T16:30:01.000Z", "SignatureVersion": "1",
               "Signature": "EXAMPLE", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem"}
        response = self.post("/anymail/amazon_ses/inbound/", data=json.dumps(sns), content_type="text/plain",
                             HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification", HTTP_X_AMZ_SNS_MESSAGE_ID=sns["MessageId"])
        self.assertEqual(response.status_code, 200)
        report = Report.objects.get()
        self.assertEqual(report.received_at, datetime(2026, 11, 27, 16, 30, tzinfo=UTC))
        self.assertIn("Reflected XSS", report.description)

    def test_a_stored_message_whose_task_was_lost_is_filed_by_the_sweep(self):
        from datetime import timedelta

        from django.utils import timezone

        from disclosure import tasks
        from disclosure.inbound import file

        row, _ = file.receive(fixture("plain.eml"), arrived_at=timezone.now(), source="webhook")
        self.assertEqual(row.state, "pending")
        with self.captureOnCommitCallbacks(execute=True):
            result = tasks.sweep(timezone.now() + timedelta(minutes=5))
        self.assertEqual(result["inbound_mail"], 1)
        self.assertEqual(Report.objects.count(), 1)
