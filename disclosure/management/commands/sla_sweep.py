from disclosure.management.commands.sweep import Command as SweepCommand


class Command(SweepCommand):
    help = "Run one sweep now: record due SLA warnings and escalations (which queue their emails), retry due email."
