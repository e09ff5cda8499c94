"""Rotating the team key loses nothing: old reports stay readable, new ones are sealed to
the new key, security.txt is signed by it, and --reseal leaves nothing sealed only to the
old key, resuming where a stopped run left off."""

import io
import re

from django.core.management import CommandError, call_command
from django.test import override_settings

from disclosure import pgp, securitytxt
from disclosure.inbound.models import InboundMail
from disclosure.models import Attachment, Message, Report
from tests.base import MONDAY_10AM, BaseTestCase, make_report, upload
from tests.pgp_keys import TeamKeyMixin, gpg_cli

SECRET = "the admin password is hunter2"
POC = bytes(range(256)) * 8


class RotationCase(TeamKeyMixin, BaseTestCase):
    def command(self, *args) -> str:
        out = io.StringIO()
        call_command("pgp_rotate_team_key", *args, stdout=out)
        return out.getvalue()

    def rotate(self):
        """Generate the new key and switch to the settings the command prints."""
        output = self.command("--generate")
        new = re.search(r"^TEAM_KEY_FINGERPRINT=([0-9A-F]{40})$", output, re.M).group(1)
        previous = re.search(r"^TEAM_KEY_PREVIOUS_FINGERPRINTS=(\S+)$", output, re.M).group(1)
        self.assertEqual(previous, self.fingerprint)
        rotated = override_settings(TEAM_KEY_FINGERPRINT=new, TEAM_KEY_PREVIOUS_FINGERPRINTS=previous.split(","))
        rotated.enable()
        self.addCleanup(rotated.disable)
        pgp.forget()
        return new

    def sealed_to(self, data) -> set[str]:
        """Which of the two team keys ``data`` is encrypted to."""
        recipients = pgp.recipient_key_ids(data)
        return {name for name, fingerprint in (("old", self.fingerprint), ("new", pgp.team_fingerprint()))
                if recipients & pgp.key_ids(fingerprint)}

    def stored(self):
        """Every sealed value of the old report: its fields, a message, an attachment."""
        report = Report.objects.get(pk=self.old_report.pk)
        message = Message.objects.get(report=report)
        with Attachment.objects.get(report=report).file.open("rb") as handle:
            return [report.sealed_content, message.body, handle.read()]

    def setUp(self):
        super().setUp()
        self.old_report, self.token = make_report(description=SECRET, files=[upload("poc.bin", POC)])
        self.old_report.add_reporter_message("Also: " + SECRET, now=MONDAY_10AM)


class TeamKeyRotationTests(RotationCase):
    def test_staff_read_old_reports_and_new_ones_are_sealed_to_the_new_key(self):
        self.rotate()
        report = Report.objects.get(pk=self.old_report.pk)
        self.assertEqual(report.content()["description"].text, SECRET)
        self.assertEqual(Attachment.objects.get(report=report).read_plain()[0], POC)
        self.assertEqual([self.sealed_to(value) for value in self.stored()], [{"old"}] * 3)

        new_report, _ = make_report(description=SECRET)
        self.assertEqual(self.sealed_to(new_report.sealed_content), {"new"})

        # A researcher who still has the old key from before is understood.
        to_old = str(pgp.team_gpg().encrypt(SECRET, [self.fingerprint], armor=True, always_trust=True))
        self.assertEqual(pgp.check_encrypted_to_team(to_old).size, len(SECRET))

    def test_the_published_key_and_security_txt_follow_the_new_key(self):
        securitytxt.generate(MONDAY_10AM)
        new = self.rotate()
        public = pgp.export_public(new)
        self.assertEqual(self.client.get("/pgp-key.txt").content.decode().strip(), public.strip())
        self.assertTrue(securitytxt.renew_if_needed(MONDAY_10AM))  # the signing key changed
        body = self.client.get("/.well-known/security.txt").content.decode()
        self.assertEqual(pgp.verify_with(body, public), new)

    def test_bad_use_is_a_clear_error(self):
        with self.assertRaisesMessage(CommandError, "Give the new key's file"):
            self.command()
        with self.assertRaisesMessage(CommandError, "cannot read"):
            self.command("/nonexistent/new-key.asc")
        with override_settings(TEAM_KEY_FINGERPRINT=""):
            with self.assertRaisesMessage(CommandError, "pgp_import_team_key instead"):
                self.command("--generate")


class ResealTests(RotationCase):  # a class of its own: it deletes the old key from the keyring
    def test_reseal_leaves_nothing_sealed_only_to_the_old_key_and_resumes(self):
        self.rotate()
        # A run stopped after one value (as a killed run would be) ...
        self.assertIn("Re-sealed 1 value(s)", self.command("--reseal", "--limit", "1"))
        self.assertEqual(sorted(map(sorted, (self.sealed_to(value) for value in self.stored()))),
                         [["new"], ["old"], ["old"]])
        # ... is resumed by the next one, which does only what is left.
        self.assertIn("Re-sealed 2 value(s)", self.command("--reseal"))
        self.assertEqual([self.sealed_to(value) for value in self.stored()], [{"new"}] * 3)
        self.assertIn("Re-sealed 0 value(s)", self.command("--reseal"))  # idempotent

        # The old key can go: everything reads with the new one alone.
        result = gpg_cli(self.gnupg_home, "--delete-secret-and-public-keys", self.fingerprint)
        self.assertEqual(result.returncode, 0, result.stderr)
        pgp.forget()
        report = Report.objects.get(pk=self.old_report.pk)
        self.assertEqual(report.content()["description"].text, SECRET)
        self.assertEqual(Attachment.objects.get(report=report).read_plain()[0], POC)
        self.assertIn(SECRET, pgp.decrypt(Message.objects.get(report=report).body).decode())
        self.assertEqual(InboundMail.objects.count(), 0)
