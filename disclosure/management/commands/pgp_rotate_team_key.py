from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from disclosure import pgp
from disclosure.pgp import reseal, transition


class Command(BaseCommand):
    requires_system_checks = []
    help = ("Rotate the team key: import the new key (or generate one, for development) and print the settings that "
            "make it the published key while the former one keeps decrypting. After restarting with them, "
            "--reseal re-encrypts everything sealed only to a former key to the new one (resumable, idempotent). "
            "The change is announced by a statement signed by both keys (--statement stores one signed elsewhere).")

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="the new key, ASCII-armored (with its secret key, or public only "
                                                    "for offline-key mode)")
        parser.add_argument("--generate", action="store_true",
                            help="generate a new ed25519 key without a passphrase (development only)")
        parser.add_argument("--reseal", action="store_true",
                            help="re-seal stored content to the current TEAM_KEY_FINGERPRINT")
        parser.add_argument("--limit", type=int, default=None,
                            help="with --reseal: stop after re-sealing this many values (run again to go on)")
        parser.add_argument("--statement", metavar="FILE",
                            help="store the transition statement signed elsewhere by both keys (offline keys)")

    def handle(self, *args, path=None, generate=False, reseal=False, limit=None, statement=None, **options):
        if sum(map(bool, (path or generate, reseal, statement))) > 1:
            raise CommandError("Give one of: the new key's file (or --generate), --reseal, --statement.")
        if reseal:
            return self.reseal(limit)
        if statement:
            return self.store_statement(statement)
        if bool(path) == bool(generate):
            raise CommandError("Give the new key's file, or --generate (development), or --reseal, or --statement.")
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
        self.announce(old, new)

    def announce(self, old, new):
        """The former key is superseded: a statement signed by both keys, published once the
        new key is in use; or, without both secrets here, how to sign it elsewhere."""
        row, unsigned = transition.announce(old, new, timezone.now())
        url = f"{settings.SITE_URL}/pgp-key-transition.txt"
        if not unsigned:
            self.stdout.write(f"The transition statement is signed by both keys and stored: once the new key is "
                              f"TEAM_KEY_FINGERPRINT it is published at {url}, and the policy page lists {old} as "
                              f"superseded on {row.announced_on:%Y-%m-%d}.")
            return
        self.stdout.write(
            f"The policy page will list {old} as superseded on {row.announced_on:%Y-%m-%d}, but the transition "
            "statement could not be signed by both keys here (a secret key is kept offline, or needs another "
            "passphrase). Save the text between the lines as transition.txt on a machine holding both secret "
            f"keys, sign it with\n  gpg --local-user {old} --local-user {new} --clearsign transition.txt\n"
            f"and store it here with\n  python manage.py pgp_rotate_team_key --statement transition.txt.asc\n"
            f"It is then published at {url}.\n" + "-" * 72 + "\n" + unsigned + "-" * 72)

    def store_statement(self, path):
        try:
            text = open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read {path}: {error}") from None
        try:
            row = transition.store_signed(text)
        except (transition.StatementRefused, pgp.PGPError) as error:
            raise CommandError(f"{path} was not stored: {error}") from None
        self.stdout.write(f"Stored the statement that {row.new_fingerprint} supersedes {row.old_fingerprint}: "
                          f"published at {settings.SITE_URL}/pgp-key-transition.txt while "
                          f"{row.new_fingerprint} is TEAM_KEY_FINGERPRINT.")

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
