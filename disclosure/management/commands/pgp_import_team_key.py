import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from disclosure import pgp


class Command(BaseCommand):
    requires_system_checks = []  # it sets up the key the checks look for
    help = ("Import the team's key (ASCII-armored; public only for offline-key mode, or with its secret key "
            "to sign and decrypt on the server) into GNUPG_HOME. Reads a file, or standard input with '-'.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="armored key file, or - for standard input")

    def handle(self, *args, path, **options):
        try:
            armored = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        except OSError as error:
            raise CommandError(f"cannot read {path}: {error}") from None
        try:
            fingerprints = pgp.import_team_key(armored)
        except pgp.PGPError as error:
            raise CommandError(str(error)) from None
        secret = set(pgp.secret_fingerprints())
        for fingerprint in fingerprints:
            kind = "secret and public" if fingerprint in secret else "public only (offline-key mode)"
            self.stdout.write(f"Imported {fingerprint} ({kind}) into {settings.GNUPG_HOME}.")
        self.stdout.write(f"Set TEAM_KEY_FINGERPRINT={fingerprints[0]} to use it.")
