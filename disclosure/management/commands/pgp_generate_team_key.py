from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from disclosure import pgp


class Command(BaseCommand):
    requires_system_checks = []  # it sets up the key the checks look for
    help = ("Generate a team key (ed25519, no passphrase) in GNUPG_HOME, for development and tests. "
            "In production import your real key with pgp_import_team_key instead.")

    def add_arguments(self, parser):
        parser.add_argument("--email", default=settings.SECURITY_TEAM_EMAIL)
        parser.add_argument("--name", default=f"{settings.ORGANISATION_NAME} security team")
        parser.add_argument("--expire", default="2y", help="gpg expiry, e.g. 2y (default) or 0 for never")
        parser.add_argument("--if-missing", action="store_true",
                            help="Do nothing when the keyring already holds a secret key (prints its fingerprint).")
        parser.add_argument("--quiet", action="store_true", help="Print only the fingerprint.")

    def handle(self, *args, email, name, expire, if_missing, quiet, **options):
        try:
            existing = pgp.secret_fingerprints() if if_missing else []
            fingerprint = existing[0] if existing else pgp.generate_team_key(email, name, expire)
        except pgp.PGPError as error:
            raise CommandError(str(error)) from None
        if quiet:
            self.stdout.write(fingerprint)
            return
        self.stdout.write(f"Team key {fingerprint} for {email} is in {settings.GNUPG_HOME}.")
        self.stdout.write(f"Set TEAM_KEY_FINGERPRINT={fingerprint} to publish it and sign security.txt.")
