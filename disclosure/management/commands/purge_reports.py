from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from disclosure.inbound.models import InboundMail
from disclosure.models import Report
from disclosure.tasks import purge_expired


class Command(BaseCommand):
    help = (f"Purge finished reports older than RETENTION_DAYS ({settings.RETENTION_DAYS}): attachments, messages, "
            "email bodies and reporter contact are deleted; dates, outcomes and SLA figures stay; ignored inbound "
            "mail goes too. The queue runs this daily; --dry-run lists what would go.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, dry_run, **options):
        now = timezone.now()
        if settings.RETENTION_DAYS == 0:
            self.stdout.write("RETENTION_DAYS is 0: reports are kept forever.")
            return
        due = Report.objects.purgeable(now).order_by("finished_at")
        if dry_run:
            for report in due:
                self.stdout.write(f"{report.tracking_id}  finished {report.finished_at:%Y-%m-%d}  "
                                  f"{report.attachments.count()} attachment(s), {report.messages.count()} message(s), "
                                  f"{report.emails.count()} email(s)")
            held = Report.objects.filter(legal_hold=True, purged_at__isnull=True).count()
            self.stdout.write(f"{due.count()} report(s) would be purged; {held} on legal hold.")
            self.stdout.write(f"{InboundMail.objects.purgeable(now).count()} Inbound mail row(s) of no report "
                              "would be deleted.")
            return
        self.stdout.write(f"{purge_expired(now)} report(s) purged.")
