"""The old team key is announced as superseded: rotating makes a transition statement signed
by both keys, published once the new key is in use, and the policy page lists the former
key with its date; with the old secret offline, the statement is signed elsewhere and
stored afterwards."""

import io
import os
import re
import tempfile

from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from django.utils.dateformat import format as date_format

from disclosure import pgp, securitytxt, sla
from disclosure.pgp.transition import KeyTransition
from tests.base import BaseTestCase
from tests.pgp_keys import ResearcherKeyring, TeamKeyMixin, gpg_cli

SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"


def grouped(fingerprint: str) -> str:
    return " ".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))


class TransitionCase(TeamKeyMixin, BaseTestCase):
    def command(self, *args) -> str:
        out = io.StringIO()
        call_command("pgp_rotate_team_key", *args, stdout=out)
        return out.getvalue()

    def rotate(self) -> tuple[str, str]:
        """Generate the new key; returns its fingerprint and what the command said."""
        output = self.command("--generate")
        return re.search(r"^TEAM_KEY_FINGERPRINT=([0-9A-F]{40})$", output, re.M).group(1), output

    def switch_to(self, new):
        """Restart with the settings the command printed."""
        switched = override_settings(TEAM_KEY_FINGERPRINT=new, TEAM_KEY_PREVIOUS_FINGERPRINTS=[self.fingerprint])
        switched.enable()
        self.addCleanup(switched.disable)
        pgp.forget()
        securitytxt.forget()

    def verified_by(self, signed: str, fingerprint: str) -> bool:
        """Whether a researcher holding only ``fingerprint``'s public key finds its valid signature on ``signed``."""
        with ResearcherKeyring() as researcher:
            self.assertEqual(researcher.run("--import", input_bytes=pgp.export_public(fingerprint).encode())
                             .returncode, 0)
            result = researcher.run("--status-fd", "1", "--verify", input_bytes=signed.encode())
        return re.search(rf"^\[GNUPG:\] VALIDSIG \S+ .* {fingerprint}$", result.stdout.decode(), re.M) is not None

    def today(self) -> str:
        return date_format(sla.local_date(timezone.now()), "j M Y")


class TransitionStatementTests(TransitionCase):
    def test_the_new_key_is_announced_by_a_statement_signed_by_both_keys(self):
        new, output = self.rotate()
        self.assertIn("signed by both keys and stored", output)
        # Nothing is announced while the former key is still the team key.
        self.assertEqual(self.client.get("/pgp-key-transition.txt").status_code, 404)
        self.assertNotContains(self.client.get("/policy/"), "Former PGP keys")

        self.switch_to(new)
        response = self.client.get("/pgp-key-transition.txt")
        self.assertEqual((response.status_code, response["Content-Type"]), (200, "text/plain; charset=utf-8"))
        statement = response.content.decode()
        self.assertTrue(statement.startswith(SIGNED))
        self.assertIn(f"  {grouped(self.fingerprint)}\nis superseded by the new key\n  {grouped(new)}", statement)
        self.assertIn(f"Date: {sla.local_date(timezone.now()).isoformat()}", statement)
        self.assertTrue(self.verified_by(statement, self.fingerprint))  # the old key vouches for the new one
        self.assertTrue(self.verified_by(statement, new))
        forged = statement.replace("Please encrypt", "Please do not encrypt")
        self.assertFalse(self.verified_by(forged, self.fingerprint))

        policy = self.client.get("/policy/").content.decode()
        self.assertIn(f"<code>{grouped(self.fingerprint)}</code>: superseded on {self.today()}", policy)
        self.assertIn('href="/pgp-key-transition.txt"', policy)
        self.login(self.auditor)
        self.assertContains(self.client.get("/admin/disclosure/keytransition/"), self.fingerprint)

        # security.txt points to it in a comment (RFC 9116 has no field for it), signed by the new key.
        self.assertTrue(securitytxt.renew_if_needed(timezone.now()))
        body = self.client.get("/.well-known/security.txt").content.decode()
        self.assertIn("# Our former PGP key is superseded by the one in Encryption; the statement signed by both "
                      "keys: https://security.example.com/pgp-key-transition.txt", body)
        self.assertEqual(securitytxt.problems(body, pgp.export_public(new), timezone.now()), [])

    def test_a_former_key_set_by_hand_is_listed_as_superseded_too(self):
        new, _ = self.rotate()
        KeyTransition.objects.all().delete()  # rotated before the portal recorded transitions
        self.switch_to(new)
        self.assertContains(self.client.get("/policy/"), f"<code>{grouped(self.fingerprint)}</code>: superseded")
        self.assertEqual(self.client.get("/pgp-key-transition.txt").status_code, 404)


class OfflineOldKeyTests(TransitionCase):  # a class of its own: it removes the old secret from the keyring
    def test_with_the_old_secret_offline_the_statement_is_signed_elsewhere_and_stored(self):
        with ResearcherKeyring() as staff_machine:
            secret = gpg_cli(self.gnupg_home, "--armor", "--export-secret-keys", self.fingerprint).stdout
            self.assertEqual(staff_machine.run("--import", input_bytes=secret).returncode, 0)
            removed = gpg_cli(self.gnupg_home, "--delete-secret-keys", self.fingerprint)
            self.assertEqual(removed.returncode, 0, removed.stderr)
            pgp.forget()

            new, output = self.rotate()
            self.assertIn("could not be signed by both keys here", output)
            self.assertIn(f"gpg --local-user {self.fingerprint} --local-user {new} --clearsign transition.txt", output)
            self.assertIn("pgp_rotate_team_key --statement transition.txt.asc", output)
            text = output.split("-" * 72 + "\n")[1]
            self.assertEqual(KeyTransition.objects.get().statement, "")

            # Once the new key is in use the former one is listed as superseded, with no statement yet.
            self.switch_to(new)
            policy = self.client.get("/policy/").content.decode()
            self.assertIn(f"<code>{grouped(self.fingerprint)}</code>: superseded on {self.today()}", policy)
            self.assertNotIn("pgp-key-transition.txt", policy)
            self.assertEqual(self.client.get("/pgp-key-transition.txt").status_code, 404)

            # Signed on the staff machine, which holds both secrets ...
            new_secret = gpg_cli(self.gnupg_home, "--armor", "--export-secret-keys", new).stdout
            self.assertEqual(staff_machine.run("--import", input_bytes=new_secret).returncode, 0)
            by_both = staff_machine.run("--local-user", self.fingerprint, "--local-user", new, "--clearsign",
                                        input_bytes=text.encode()).stdout.decode()
            by_new = staff_machine.run("--local-user", new, "--clearsign", input_bytes=text.encode()).stdout.decode()

        # ... one signature is not enough ...
        with self.assertRaisesMessage(CommandError, "needs valid signatures by both keys; it has 1"):
            self.command("--statement", self.file_with(by_new))
        with self.assertRaisesMessage(CommandError, "cannot read"):
            self.command("--statement", "/nonexistent/transition.txt.asc")
        self.assertEqual(self.client.get("/pgp-key-transition.txt").status_code, 404)
        # ... both are, and the statement is published.
        self.assertIn(f"Stored the statement that {new} supersedes {self.fingerprint}",
                      self.command("--statement", self.file_with(by_both)))
        statement = self.client.get("/pgp-key-transition.txt").content.decode()
        self.assertTrue(self.verified_by(statement, self.fingerprint))
        self.assertTrue(self.verified_by(statement, new))
        self.assertContains(self.client.get("/policy/"), 'href="/pgp-key-transition.txt"')

    def file_with(self, text: str) -> str:
        handle = tempfile.NamedTemporaryFile("w", suffix=".asc", delete=False)
        self.addCleanup(os.unlink, handle.name)
        with handle:
            handle.write(text)
        return handle.name
