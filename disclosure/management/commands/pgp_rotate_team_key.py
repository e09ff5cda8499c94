from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from disclosure import pgp
from disclosure.pgp import reseal


class Command(BaseCommand):
    requires_system_checks = []
    help = ("Rotate the team key: import the new key (or generate one, for development) and print the settings that "
            "make it the published key while the former one keeps decrypting. After restarting with them, "
            "--reseal re-encrypts everything sealed only to a former key to the new one (resumable, idempotent).")

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="the new key, ASCII-armored (with its secret key, or public only "
                                                    "for offline-key mode)")
        parser.add_argument("--generate", action="store_true",
                            help="generate a new ed25519 key without a passphrase (development only)")
        parser.add_argument("--reseal", action="store_true",
                            help="re-seal stored content to the current TEAM_KEY_FINGERPRINT")
        parser.add_argument("--limit", type=int, default=None,
                            help="with --reseal: stop after re-sealing this many values (run again to go on)")

    def handle(self, *args, path=None, generate=False, reseal=False, limit=None, **options):
        if reseal:
            if path or generate:
                raise CommandError("--reseal runs on its own, after the new key is TEAM_KEY_FINGERPRINT.")
            return self.reseal(limit)
        if bool(path) == bool(generate):
            raise CommandError("Give the new key's file, or --generate (development), or --reseal.")
        old = pgp.team_fingerprint()
        if not old:
            raise CommandError("No team key is configured (TEAM_KEY_FINGERPRINT): import the first one with "
                               "pgp_import_team_key instead.")
        try:
            if generate:
                new = pgp.generate_team_key(settings.SECURITY_TEAM_EMAIL, f"{settings.ORGANISATION_NAME} security team")
            else:
                try:
                    armored = open(path, encoding="utf-8").read()
                except (OSError, UnicodeDecodeError) as error:
                    raise CommandError(f"cannot read {path}: {error}") from None
                imported = pgp.import_team_key(armored)
                if len(imported) != 1:
                    raise CommandError(f"{path} holds {len(imported)} keys: give one key.")
                new = imported[0]
        except pgp.PGPError as error:
            raise CommandError(str(error)) from None
        if new == old:
            raise CommandError(f"{new} is already the team key.")
        previous = [old, *[fpr for fpr in pgp.previous_fingerprints() if fpr != new]]
        secret = new in pgp.secret_fingerprints()
        self.stdout.write(f"New team key {new} ({'secret and public' if secret else 'public only: offline-key mode'}) "
                          f"is in {settings.GNUPG_HOME}; the former key {old} stays there.")
        self.stdout.write("Set these, restart the web and worker processes, then run "
                          "manage.py pgp_rotate_team_key --reseal:")
        self.stdout.write(f"TEAM_KEY_FINGERPRINT={new}")
        self.stdout.write(f"TEAM_KEY_PREVIOUS_FINGERPRINTS={','.join(previous)}")

    def reseal(self, limit):
        if not pgp.team_fingerprint():
            raise CommandError("No team key is configured (TEAM_KEY_FINGERPRINT).")
        if not pgp.can_decrypt():
            raise CommandError("The team key cannot decrypt here (offline-key mode): re-sealing needs the secret keys.")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        result = reseal.reseal_all(limit)
        self.stdout.write(f"Re-sealed {result['resealed']} value(s) to {pgp.team_fingerprint()}; "
                          f"{result['checked']} item(s) checked, {result['failed']} could not be decrypted here.")
        if result["failed"]:
            raise CommandError("Some items could not be decrypted (see the log): is every former team key's "
                               "secret in the keyring?")
