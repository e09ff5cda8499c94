from django.core.management.base import BaseCommand

from disclosure.tasks import sweep


class Command(BaseCommand):
    help = ("Run one sweep now, the same code the queue runs every minute: record due SLA warnings and "
            "escalations (which queue their emails) and retry due email.")

    def handle(self, *args, **options):
        result = sweep()
        self.stdout.write(", ".join(f"{key}: {value}" for key, value in result.items()))
