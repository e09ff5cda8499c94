import json as jsonlib
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from disclosure.inbound import file as inbound_file
from disclosure.inbound.models import InboundMail
from disclosure.models import Report, StatusLink

DEMO = [
    ("Stored XSS in the profile bio", "https://app.example.com/profile", "CWE-79", 9, None),
    ("SQL injection in the search API", "https://api.example.com/v2/search", "CWE-89", 6, "triage:critical"),
    ("Open redirect after login", "https://auth.example.com/login?next=", "CWE-601", 4, "ack"),
    ("Missing rate limit on password reset", "https://auth.example.com/reset", "CWE-307", 3, "info"),
    ("Subdomain takeover of old-blog.example.com", "old-blog.example.com", "CWE-284", 12, "resolve:high"),
    ("Version banner in HTTP headers", "https://www.example.com", "CWE-200", 8, "close:informative"),
    ("Buy cheap watches", "", "", 1, "close:spam"),
    ("IDOR on invoice download", "https://billing.example.com/invoices/123", "CWE-639", 0, None),
]


class Command(BaseCommand):
    help = ("Development only: fill the database with demonstration reports in every state, and a Lead "
            "'demo' (password printed) to explore the triage queue.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help="Print the status URL of each report as JSON.")

    def handle(self, *args, as_json: bool, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo only runs with DEBUG=true.")
        lead, created = User.objects.get_or_create(username="demo", defaults={"email": "demo@example.com",
                                                                               "is_staff": True})
        if created:
            lead.set_password("demo-password-1")
            lead.save()
            lead.groups.add(Group.objects.get(name="Lead"))
        now = timezone.now()
        urls = {}
        for title, asset, cwe, days_ago, outcome in DEMO:
            report, token = Report.submit(fields={
                "title": title, "asset": asset, "vulnerability_type": cwe,
                "description": f"**{title}.**\n\n1. Open `{asset or 'the site'}`\n2. Observe the problem.",
                "impact": "An attacker could abuse this against our users.",
                "reporter_name": "Ada Researcher", "reporter_email": "ada@researcher.example",
                "credit": "name", "credit_name": "ada_l",
            }, now=now - timedelta(days=days_ago))
            urls[report.tracking_id] = StatusLink.url(token)
            when = now - timedelta(days=max(days_ago - 1, 0))
            if outcome is None:
                continue
            action, _, arg = outcome.partition(":")
            if action == "ack":
                report.acknowledge(lead, now=when)
            elif action == "info":
                report.request_info(lead, "Which account did you test with?", now=when)
            elif action == "triage":
                report.triage(lead, arg, now=when, body="Confirmed, thank you.")
            elif action == "resolve":
                report.triage(lead, arg, now=when)
                report.resolve(lead, now=when, body="Fixed: the DNS record was removed.")
            elif action == "close":
                report.close(lead, arg, now=when)
        emailed = self.emailed_report(now - timedelta(hours=5))
        urls["email"] = StatusLink.url(StatusLink.mint(emailed))
        if as_json:
            self.stdout.write(jsonlib.dumps(urls))
        else:
            self.stdout.write(f"{len(DEMO) + 1} demonstration reports created (one by email). Log in at /admin/ as "
                              "demo / demo-password-1 (a Lead).")

    @staticmethod
    def emailed_report(arrived_at) -> Report:
        """A report that arrived by email to the security address (through the same path as
        IMAP, webhooks and ingest_email)."""
        raw = (b"From: Grace Hopper <grace@researcher.example>\r\nTo: security@example.com\r\n"
               b"Subject: Directory listing exposes database backups\r\n"
               b"Message-ID: <demo-1@researcher.example>\r\nDate: Mon, 7 Dec 2026 09:00:00 +0000\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
               b"Hello,\r\n\r\nhttps://files.example.com/backups/ lists nightly SQL dumps that anyone can "
               b"download.\r\n\r\nGrace\r\n")
        row = inbound_file.take(raw, arrived_at=arrived_at, source=InboundMail.Source.PIPE)
        return Report.objects.get(pk=row.report_id)
