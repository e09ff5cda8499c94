from django.core.management.base import BaseCommand, CommandError

from disclosure.inbound import imap


class Command(BaseCommand):
    help = "Poll the IMAP mailbox (INBOUND_IMAP_URL) once: file each message, then move it to INBOUND_DONE_FOLDER."

    def handle(self, *args, **options):
        result = imap.poll()
        if not result.get("configured"):
            raise CommandError("INBOUND_IMAP_URL is not set.")
        if "error" in result:
            raise CommandError(f"Polling failed: {result['error']}")
        self.stdout.write(f"Filed {result['filed']}, moved {result['moved']}, left for retry {result['kept']}.")
