"""Read one raw RFC 5322 message from standard input and file it (an MTA pipe, e.g.
Postfix ``security: "|/srv/portal/.venv/bin/python /srv/portal/manage.py ingest_email"``).

Exit status 0: filed, or deliberately ignored (logged under Inbound mail). 75
(EX_TEMPFAIL): the message could not be recorded (database or storage down): the MTA keeps
it and tries again. The arrival time is when this command runs.
"""

import sys

from django.core.management.base import BaseCommand
from django.db import DatabaseError
from django.utils import timezone

from disclosure import storage
from disclosure.inbound import file
from disclosure.inbound.models import InboundMail

EX_TEMPFAIL = 75


class Command(BaseCommand):
    help = "File one raw email read from standard input (exit 75 when the MTA must retry)."

    def handle(self, *args, **options):
        arrived = timezone.now()
        raw = sys.stdin.buffer.read()
        if not raw.strip():
            self.stderr.write("ingest_email: the message is empty; nothing to file.")
            return
        try:
            row = file.take(raw, arrived_at=arrived, source=InboundMail.Source.PIPE)
        except (DatabaseError, *storage.ERRORS) as exc:
            self.stderr.write(f"ingest_email: could not record the message, the MTA should retry: {exc}")
            sys.exit(EX_TEMPFAIL)
        self.stdout.write(f"Inbound mail #{row.pk}: {row.get_state_display()}"
                          + (f", {row.get_outcome_display()}" if row.outcome else ""))
