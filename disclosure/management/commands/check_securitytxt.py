from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from django.utils import timezone

from disclosure import pgp, securitytxt


class Command(BaseCommand):
    help = ("Validate what the portal serves at /.well-known/security.txt: required fields, the Expires window, "
            "https URLs, and the signature against the key published at /pgp-key.txt.")

    def handle(self, *args, **options):
        # Ask as a visitor of SITE_URL would: its host, and https when it is https. The test
        # client takes ``secure`` per request (in its constructor it would become a WSGI
        # variable that nothing reads, and production would answer with a redirect to https).
        client = Client(HTTP_HOST=urlsplit(settings.SITE_URL).hostname)
        https = settings.SITE_URL.startswith("https://")
        response = client.get("/.well-known/security.txt", secure=https)
        if response.status_code != 200:
            raise CommandError(f"/.well-known/security.txt answered {response.status_code}")
        key_response = client.get("/pgp-key.txt", secure=https)
        public_key = key_response.content.decode() if key_response.status_code == 200 else None
        problems = securitytxt.problems(response.content.decode(), public_key, timezone.now())
        key = pgp.team_key() if pgp.team_fingerprint() else None
        if key is not None and key.expires is not None:
            days = (key.expires - timezone.now()).days
            self.stdout.write(f"Team key {key.fingerprint} expires in {days} days.")
            if days < 30:
                problems.append(f"The team key expires in {days} days: extend it and re-import it.")
        for problem in problems:
            self.stderr.write(f"problem: {problem}")
        if problems:
            raise CommandError(f"{len(problems)} problem(s) in security.txt")
        signed = response.content.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
        verdict = "security.txt is valid" + (" and its signature verifies" if signed else "")
        self.stdout.write(self.style.SUCCESS(verdict + "."))
