"""PGP end to end, with the real gpg binary: encrypted reports in, encrypted and signed mail out."""

import base64
import email
import email.policy
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from unittest import mock

import time_machine
from django.test import override_settings

from disclosure import pgp
from disclosure.models import Attachment, OutboundEmail, Report, StatusLink
from disclosure.pgp.mime import PGPMimeEmail
from tests.base import LONDON, MONDAY_10AM, BaseTestCase, make_report, report_data, stored_bytes, upload
from tests.pgp_keys import ResearcherKeyring, TeamKeyMixin, export_public, gpg_cli, researcher_key, revoke

SECRET = "SQL injection in /api/search?q= lets anyone read the users table"


def parse(message) -> email.message.EmailMessage:
    """The email exactly as it goes on the wire (what an SMTP server would receive)."""
    return email.message_from_bytes(wire(message), policy=email.policy.default)


def wire(message) -> bytes:
    return message.message().as_bytes(policy=email.policy.SMTP)  # CRLF, as the SMTP mailer sends it


def signed_parts(raw: bytes) -> tuple[bytes, bytes]:
    """Split a multipart/signed entity into the exact signed bytes and the signature."""
    message = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert message.get_content_type() == "multipart/signed", message.get_content_type()
    boundary = message.get_boundary().encode()
    body = raw.split(b"\r\n\r\n", 1)[1]
    sections = body.split(b"--" + boundary)
    data = sections[1][2:-2]  # between the CRLF after the boundary line and the CRLF before the next
    signature = message.get_payload()[1].get_content()
    return data, signature if isinstance(signature, bytes) else signature.encode()


@time_machine.travel(MONDAY_10AM, tick=False)
class EncryptedReportsInTests(TeamKeyMixin, BaseTestCase):
    def setUp(self):
        super().setUp()
        self.researcher = ResearcherKeyring().__enter__()
        self.addCleanup(self.researcher.__exit__, None, None, None)
        team_key = self.client.get("/pgp-key.txt", secure=True).content
        assert self.researcher.run("--import", input_bytes=team_key).returncode == 0

    def encrypt(self, text: str, recipient=None, *extra) -> str:
        result = self.researcher.run("--trust-model", "always", "--encrypt", "--armor", "--recipient",
                                     recipient or self.fingerprint, *extra, input_bytes=text.encode())
        assert result.returncode == 0, result.stderr
        return result.stdout.decode()

    def test_the_form_shows_the_key_to_check_in_groups_of_four_with_its_date(self):
        page = self.client.get("/report/", secure=True)
        grouped = " ".join(self.fingerprint[i:i + 4] for i in range(0, 40, 4))
        created = pgp.team_key().created.astimezone(LONDON)  # made when the test class started, in real time
        self.assertContains(page, f'<code class="fingerprint">{grouped}</code>, created {created.day} {created:%B %Y}')
        self.assertContains(page, '<a href="/pgp-key.txt">How to check it</a>')

    def test_a_report_encrypted_with_gpg_is_read_decrypted_by_a_triager(self):
        armored = self.encrypt(SECRET)
        response = self.submit(report_data(description=armored))
        self.assertEqual(response.status_code, 302)
        report = Report.objects.get()
        self.assertTrue(report.description.startswith("-----BEGIN PGP MESSAGE-----"))
        self.assertNotIn(SECRET, report.description)
        self.login(self.triager)
        page = self.client.get(f"/admin/disclosure/report/{report.pk}/change/", secure=True)
        self.assertContains(page, SECRET)

    def test_checking_an_encrypted_field_runs_gpg_once(self):
        armored = self.encrypt(SECRET)
        pgp.check_encrypted_to_team(armored)  # the keyring is read once, then remembered
        with mock.patch("gnupg.Popen", wraps=subprocess.Popen) as started:
            pgp.check_encrypted_to_team(armored)
        self.assertEqual(started.call_count, 1)  # decrypting it says who it was encrypted to

    def test_plaintext_reports_and_files_are_stored_encrypted_and_read_on_demand(self):
        response = self.submit(report_data(description=SECRET), files=[upload("poc.py", b"print('pwned')")])
        self.assertEqual(response.status_code, 302)
        report = Report.objects.get()
        self.assertEqual(report.description, "")  # sealed with the other fields, as one message
        self.assertTrue(report.sealed_content.startswith("-----BEGIN PGP MESSAGE-----"))
        self.assertNotIn(SECRET, report.sealed_content)
        attachment = Attachment.objects.get()
        self.assertTrue(attachment.encrypted)
        self.assertNotIn(b"pwned", stored_bytes(attachment.file))
        self.assertEqual((attachment.size, attachment.original_name), (14, "poc.py"))
        self.login(self.triager)
        self.assertContains(self.client.get(f"/admin/disclosure/report/{report.pk}/change/", secure=True), SECRET)
        download = self.client.get(f"/staff/attachments/{attachment.pk}/", secure=True)
        self.assertEqual(b"".join(download.streaming_content), b"print('pwned')")
        token = self.status_token_in(self.client.get("/report/received/", secure=True).content.decode())
        self.assertNotContains(self.client.get(f"/status/{token}/", secure=True), SECRET)  # no gpg per view
        self.assertContains(self.client.get(f"/status/{token}/submitted/", secure=True), SECRET)

    def test_a_submission_seals_the_text_fields_in_one_gpg_run(self):
        fields = report_data(description=SECRET, steps_to_reproduce="1. Open it", impact="Everything")
        pgp.team_key()
        with mock.patch("gnupg.Popen", wraps=subprocess.Popen) as started:
            self.submit(fields, execute=False)  # the emails are signed later, by the worker
        self.assertEqual(started.call_count, 1)
        report = Report.objects.get()
        self.assertEqual((report.description, report.steps_to_reproduce, report.impact), ("", "", ""))
        inside = json.loads(pgp.decrypt(report.sealed_content))
        self.assertEqual(inside, {"description": SECRET, "steps_to_reproduce": "1. Open it", "impact": "Everything"})
        revealed = report.content()
        self.assertEqual(revealed["steps_to_reproduce"].text, "1. Open it")
        self.assertTrue(revealed["description"].sealed)

    def test_an_encrypted_asc_attachment_is_accepted_and_decrypted_for_staff(self):
        armored = self.encrypt("exploit code")
        self.submit(files=[upload("exploit.py.asc", armored.encode(), "application/pgp-encrypted")])
        attachment = Attachment.objects.get()
        self.login(self.triager)
        download = self.client.get(f"/staff/attachments/{attachment.pk}/", secure=True)
        self.assertEqual(b"".join(download.streaming_content), b"exploit code")
        self.assertIn('filename="exploit.py"', download["Content-Disposition"])

    def test_a_file_encrypted_in_the_browser_is_described_as_the_researcher_had_it(self):
        armored = self.encrypt("print('exploit code')\n")
        self.submit(files=[upload("exploit.py.asc", armored.encode(), "application/pgp-encrypted")])
        attachment = Attachment.objects.get()
        plain = b"print('exploit code')\n"
        self.assertEqual((attachment.size, attachment.sha256), (len(plain), hashlib.sha256(plain).hexdigest()))
        self.assertEqual((attachment.display_name, attachment.display_type), ("exploit.py", "text/x-python"))
        self.login(self.triager)
        page = self.client.get(f"/admin/disclosure/report/{attachment.report_id}/change/", secure=True)
        for shown in ("exploit.py</a>", "stored encrypted", "22\xa0bytes", "text/x-python", attachment.sha256):
            self.assertContains(page, shown)
        self.assertNotContains(page, "application/pgp-encrypted")
        token = StatusLink.mint(attachment.report)
        submitted = self.client.get(f"/status/{token}/submitted/", secure=True)
        self.assertContains(submitted, "exploit.py</a> (22\xa0bytes, stored encrypted)")

    def test_a_file_that_merely_contains_an_armor_line_is_still_encrypted_at_rest(self):
        content = b"x" * 40 + b"-----BEGIN PGP MESSAGE-----\nnot really\n-----END PGP MESSAGE-----\n"
        self.submit(files=[upload("notes.txt", content)])
        attachment = Attachment.objects.get()
        self.assertTrue(attachment.encrypted)
        self.assertNotIn(b"not really", stored_bytes(attachment.file))
        self.assertEqual(attachment.read_plain()[0], content)

    def test_reporter_messages_are_sealed_too(self):
        self.submit()
        token = self.status_token_in(self.client.get("/report/received/", secure=True).content.decode())
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post(f"/status/{token}/", {"body": "Also " + SECRET}, secure=True)
        message = Report.objects.get().messages.get()
        self.assertNotIn(SECRET, message.body)
        page = self.client.get(f"/status/{token}/", secure=True)
        self.assertNotContains(page, SECRET)
        self.assertContains(page, f"submitted/#message-{message.pk}")
        self.assertContains(self.client.get(f"/status/{token}/submitted/", secure=True), SECRET)


    def test_a_broken_armor_block_is_refused(self):
        armored = self.encrypt(SECRET)
        lines = armored.splitlines()
        lines[3] = lines[3][:-6] + "AAAAAA"
        self.assertRefused(self.submit(report_data(description="\n".join(lines))), "The armored block is damaged")
        truncated = armored.split("-----END")[0]
        self.assertRefused(self.submit(report_data(description=truncated)), "not a complete ASCII-armored block")

    def test_a_message_with_a_hidden_recipient_is_accepted_when_our_key_decrypts_it(self):
        hidden = self.encrypt(SECRET, None, "--throw-keyids")
        self.assertIn("ENC_TO 0000000000000000",
                      self.researcher.run("--list-only", "--status-fd", "2", "--decrypt",
                                          input_bytes=hidden.encode()).stderr.decode())
        other = researcher_key(self.researcher, uid="Someone Else <else@example.com>")
        self.assertRefused(self.submit(report_data(description=self.encrypt(SECRET, other, "--throw-keyids"))),
                           "encrypted to a different key")
        self.assertEqual(self.submit(report_data(description=hidden)).status_code, 302)

    def test_a_message_encrypted_to_another_key_is_refused(self):
        other = researcher_key(self.researcher, uid="Someone Else <else@example.com>")
        self.assertRefused(self.submit(report_data(description=self.encrypt(SECRET, other))),
                           "encrypted to a different key")

    def binary(self, text: str, *recipients) -> bytes:
        args = ["--trust-model", "always", "--encrypt"]
        for recipient in recipients:
            args += ["--recipient", recipient]
        result = self.researcher.run(*args, input_bytes=text.encode())
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    @staticmethod
    def armored(data: bytes) -> str:
        """ASCII armor (RFC 4880 section 6) around raw OpenPGP packets, as a researcher's
        tool would write it: base64 lines and a CRC-24 checksum."""
        crc = 0xB704CE
        for byte in data:
            crc ^= byte << 16
            for _ in range(8):
                crc <<= 1
                if crc & 0x1000000:
                    crc ^= 0x1864CFB
        body = base64.b64encode(data).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        checksum = base64.b64encode((crc & 0xFFFFFF).to_bytes(3, "big")).decode()
        return "-----BEGIN PGP MESSAGE-----\n\n" + "\n".join(lines) + f"\n={checksum}\n-----END PGP MESSAGE-----\n"

    def test_a_damaged_message_to_us_and_to_the_researcher_is_refused(self):
        own = researcher_key(self.researcher)
        message = bytearray(self.binary(SECRET, self.fingerprint, own))
        message[-5] ^= 0x01  # one flipped byte in the encrypted data: staff could never read it
        self.assertRefused(self.submit(report_data(description=self.armored(bytes(message)))),
                           "could not be decrypted with our key")

    def test_a_message_to_us_followed_by_another_message_is_refused(self):
        other = researcher_key(self.researcher, uid="Someone Else <else@example.com>")
        joined = self.binary(SECRET, self.fingerprint) + self.binary("more", other)
        self.assertRefused(self.submit(report_data(description=self.armored(joined))), "more than one message")
        twice = self.binary(SECRET, self.fingerprint) + self.binary("hidden", self.fingerprint)
        self.assertRefused(self.submit(report_data(description=self.armored(twice))), "more than one message")

    def test_a_compression_bomb_is_refused_without_being_held_in_memory(self):
        bomb = self.researcher.run("--trust-model", "always", "--encrypt", "--armor", "--recipient", self.fingerprint,
                                   input_bytes=b"\0" * (pgp.TEXT_MAX_OUTPUT + 1)).stdout.decode()
        self.assertLess(len(bomb), 20_000)  # fits in a text field
        self.assertRefused(self.submit(report_data(description=bomb)), "decrypts to more than 4 MB")
        with self.assertRaises(pgp.PGPError):
            pgp.decrypt(bomb, max_output=pgp.TEXT_MAX_OUTPUT)

    def test_a_signed_only_message_is_refused(self):
        key = researcher_key(self.researcher)
        clearsigned = self.researcher.run("--local-user", key, "--clearsign", input_bytes=SECRET.encode())
        self.assertRefused(self.submit(report_data(description=clearsigned.stdout.decode())),
                           "This is a signed message, not an encrypted one")
        signed = self.researcher.run("--local-user", key, "--sign", "--armor", input_bytes=SECRET.encode())
        self.assertRefused(self.submit(report_data(description=signed.stdout.decode())), "is not encrypted")

    def test_a_bad_asc_attachment_is_refused_with_its_name(self):
        other = researcher_key(self.researcher, uid="Someone Else <else@example.com>")
        response = self.submit(files=[upload("notes.asc", self.encrypt("x", other).encode())])
        self.assertRefused(response, "notes.asc: This message is encrypted to a different key")


@time_machine.travel(MONDAY_10AM, tick=False)
class SealingTests(TeamKeyMixin, BaseTestCase):
    """Reporter content is sealed by gpg, the one OpenPGP engine, and read back by it."""

    def test_gpg_seals_text_and_files_and_decrypts_them(self):
        armored = pgp.encrypt_to_team(SECRET)
        binary = pgp.encrypt_to_team(b"\x00binary\xff", armor=False)
        self.assertTrue(armored.startswith("-----BEGIN PGP MESSAGE-----"))
        self.assertNotIn(SECRET, armored)
        self.assertEqual(pgp.decrypt(armored).decode(), SECRET)
        self.assertEqual(pgp.decrypt(binary), b"\x00binary\xff")

    def test_the_keyring_is_read_once_until_it_changes(self):
        pgp.team_key()
        with mock.patch("gnupg.Popen", wraps=subprocess.Popen) as started:
            self.assertTrue(pgp.can_sign() and pgp.can_decrypt())
        started.assert_not_called()


class KeyringTests(BaseTestCase):
    """Team keys made on the team's own machine and imported, as in production."""

    def setUp(self):
        super().setUp()
        self.addCleanup(pgp.forget)
        self.team = ResearcherKeyring().__enter__()  # the team's own machine, where keys are made
        self.addCleanup(self.team.__exit__, None, None, None)
        self.home = tempfile.mkdtemp(prefix="disclosure-test-sealing-")
        self.addCleanup(shutil.rmtree, self.home, ignore_errors=True)
        self.addCleanup(pgp.stop_agent, self.home)

    def use_as_team_key(self, armored: str, fingerprint: str):
        self.enterContext(override_settings(GNUPG_HOME=Path(self.home), TEAM_KEY_FINGERPRINT=fingerprint))
        pgp.import_team_key(armored)

    def recipients(self, sealed: str) -> set[str]:
        listing = pgp.team_gpg().decrypt(sealed, extra_args=["--list-only"]).stderr
        return set(re.findall(r"ENC_TO ([0-9A-F]{16})", listing))

    def secret_key(self, fingerprint: str) -> str:
        return self.team.run("--armor", "--pinentry-mode", "loopback", "--passphrase", "",
                             "--export-secret-keys", fingerprint).stdout.decode()

    def test_only_the_newest_encryption_subkey_is_used(self):
        fingerprint = researcher_key(self.team, uid="Team <team@example.com>")
        older = self.encryption_subkeys(fingerprint)
        time.sleep(1.1)  # creation times are in seconds: make the new subkey the newer one
        result = self.team.run("--passphrase", "", "--pinentry-mode", "loopback", "--quick-add-key", fingerprint,
                               "cv25519", "encr", "1y")
        self.assertEqual(result.returncode, 0, result.stderr)
        newest = (set(self.encryption_subkeys(fingerprint)) - set(older)).pop()
        self.use_as_team_key(self.secret_key(fingerprint), fingerprint)
        sealed = pgp.encrypt_to_team(SECRET)
        self.assertEqual(self.recipients(sealed), {newest[-16:]})
        self.assertEqual(pgp.decrypt(sealed).decode(), SECRET)

    def test_a_revoked_team_key_is_not_sealed_to_from_the_moment_it_is_imported(self):
        fingerprint = researcher_key(self.team, uid="Team <team@example.com>")
        self.use_as_team_key(self.secret_key(fingerprint), fingerprint)
        self.assertEqual(pgp.decrypt(pgp.encrypt_to_team(SECRET)).decode(), SECRET)
        revoke(self.team, fingerprint)
        pgp.import_team_key(export_public(self.team, fingerprint))
        with self.assertRaises(pgp.PGPError):
            pgp.encrypt_to_team(SECRET)

    def test_a_revocation_imported_by_another_process_applies_at_once(self):
        fingerprint = researcher_key(self.team, uid="Team <team@example.com>")
        self.use_as_team_key(self.secret_key(fingerprint), fingerprint)
        self.assertTrue(pgp.can_sign())
        revoke(self.team, fingerprint)
        imported = gpg_cli(self.home, "--import", input_bytes=export_public(self.team, fingerprint).encode())
        self.assertEqual(imported.returncode, 0, imported.stderr)  # e.g. manage.py pgp_import_team_key
        with self.assertRaises(pgp.PGPError):
            pgp.encrypt_to_team(SECRET)
        self.assertFalse(pgp.can_sign())  # the remembered facts went with the keyring change

    def signing_subkey_only(self) -> str:
        """A team key whose primary is offline, with only the signing subkey's secret here
        (to sign security.txt and email); returns its fingerprint."""
        loopback = ("--passphrase", "", "--pinentry-mode", "loopback")
        result = self.team.run(*loopback, "--quick-gen-key", "Team <team@example.com>", "ed25519", "cert", "1y")
        self.assertEqual(result.returncode, 0, result.stderr)
        fingerprint = self.fingerprints()[0]
        for algo, usage in (("ed25519", "sign"), ("cv25519", "encr")):
            self.assertEqual(self.team.run(*loopback, "--quick-add-key", fingerprint, algo, usage, "1y").returncode, 0)
        signing_subkey = self.fingerprints()[1]
        signing_only = self.team.run(*loopback, "--armor", "--export-secret-subkeys", f"{signing_subkey}!")
        self.use_as_team_key(export_public(self.team, fingerprint), fingerprint)
        pgp.import_team_key(signing_only.stdout.decode())
        return fingerprint

    def test_with_only_the_signing_key_here_it_signs_seals_and_accepts_but_never_decrypts(self):
        fingerprint = self.signing_subkey_only()
        self.assertTrue(pgp.can_sign())
        self.assertFalse(pgp.can_decrypt())
        sealed = pgp.encrypt_to_team(SECRET)
        self.assertEqual(self.team.run("--decrypt", input_bytes=sealed.encode()).stdout.decode(), SECRET)
        pgp.check_encrypted_to_team(sealed)  # a researcher's encrypted report is accepted
        hidden = self.team.run("--trust-model", "always", "--encrypt", "--armor", "--hidden-recipient", fingerprint,
                               input_bytes=SECRET.encode()).stdout.decode()
        pgp.check_encrypted_to_team(hidden)  # no key named: the team decrypts it offline
        self.assertIn("-----BEGIN PGP SIGNATURE-----", pgp.clearsign("hello", fingerprint))

    def test_the_dashboard_says_which_mode_the_key_is_in(self):
        self.signing_subkey_only()
        self.login(self.lead)
        page = self.client.get("/admin/metrics/")
        self.assertContains(page, "(offline-key mode: signs here, decrypted on staff machines)")
        fingerprint = researcher_key(self.team, uid="Team <team2@example.com>")
        self.use_as_team_key(self.secret_key(fingerprint), fingerprint)
        self.assertNotContains(self.client.get("/admin/metrics/"), "offline-key mode")

    def test_with_only_the_signing_key_here_a_status_page_view_runs_no_gpg(self):
        self.signing_subkey_only()
        with override_settings(SITE_URL="http://testserver"):
            report, token = make_report(description=SECRET, steps_to_reproduce="steps")
            report.add_reporter_message("and a follow-up")
        self.assertTrue(report.sealed_content)
        pgp.team_key()  # what the keyring says is read once per keyring change
        with mock.patch("gnupg.Popen", wraps=subprocess.Popen) as started:
            page = self.client.get(f"/status/{token}/")
        self.assertEqual(page.status_code, 200)
        started.assert_not_called()
        self.assertContains(page, "Stored encrypted")
        submitted = self.client.get(f"/status/{token}/submitted/")  # on request: shown as sealed, not decrypted
        self.assertContains(submitted, "-----BEGIN PGP MESSAGE-----")
        self.assertNotContains(submitted, SECRET)

    def test_a_secret_key_imported_by_another_process_is_seen_at_once(self):
        fingerprint = researcher_key(self.team, uid="Team <team@example.com>")
        self.use_as_team_key(export_public(self.team, fingerprint), fingerprint)
        self.assertFalse(pgp.can_decrypt())
        imported = gpg_cli(self.home, "--import", input_bytes=self.secret_key(fingerprint).encode())
        self.assertEqual(imported.returncode, 0, imported.stderr)
        self.assertTrue(pgp.can_decrypt())

    def fingerprints(self) -> list[str]:
        listing = self.team.run("--with-colons", "--list-keys").stdout.decode().splitlines()
        return [line.split(":")[9] for line in listing if line.startswith("fpr:")]

    def encryption_subkeys(self, fingerprint: str) -> list[str]:
        listing = self.team.run("--with-colons", "--list-keys", fingerprint).stdout.decode().splitlines()
        found, in_encryption_subkey = [], False
        for line in listing:
            fields = line.split(":")
            if fields[0] == "sub":
                in_encryption_subkey = "e" in fields[11]
            elif fields[0] == "fpr" and in_encryption_subkey:
                found.append(fields[9])
                in_encryption_subkey = False
        return found


class ReporterKeyTests(TeamKeyMixin, BaseTestCase):
    def setUp(self):
        super().setUp()
        self.researcher = ResearcherKeyring().__enter__()
        self.addCleanup(self.researcher.__exit__, None, None, None)
        self.key = researcher_key(self.researcher)
        self.public = export_public(self.researcher, self.key)

    def submit_with_key(self, key=None):
        return self.submit(report_data(reporter_public_key=key if key is not None else self.public))

    def test_receipt_is_encrypted_to_the_reporter_and_signed_by_the_team(self):
        self.assertEqual(self.submit_with_key().status_code, 302)
        page = self.client.get("/report/received/", secure=True)
        self.assertContains(page, self.key)
        [receipt] = self.emails_to("ada@researcher.example")
        outer = parse(receipt)
        raw = wire(receipt)
        self.assertEqual(outer["Subject"], "[VDP-2026-0001] Encrypted message about your report")
        self.assertEqual(outer.get_content_type(), "multipart/encrypted")
        self.assertEqual(outer.get_param("protocol"), "application/pgp-encrypted")
        self.assertNotIn(b"Tracking ID", raw)
        self.assertNotIn(b"text/html", raw)
        control, payload = outer.get_payload()
        self.assertEqual(control.get_content_type(), "application/pgp-encrypted")
        self.assertIn("Version: 1", control.get_content().decode() if isinstance(control.get_content(), bytes)
                      else control.get_content())
        ciphertext = payload.get_content()
        ciphertext = ciphertext if isinstance(ciphertext, bytes) else ciphertext.encode()
        decrypted = self.researcher.run("--decrypt", input_bytes=ciphertext)
        self.assertEqual(decrypted.returncode, 0, decrypted.stderr)
        data, signature = signed_parts(decrypted.stdout)
        self.assertIn(b"Tracking ID: VDP-2026-0001", data.replace(b"=\r\n", b""))
        self.assertIn(b"Subject: [VDP-2026-0001] We received your vulnerability report", data.replace(b"=\r\n", b""))
        self.assertNotIn(b"text/html", decrypted.stdout)
        self.assertTrue(self.verify_with_team_key(data, signature))
        self.assertFalse(self.verify_with_team_key(data.replace(b"VDP", b"XDP"), signature))

    def verify_with_team_key(self, data: bytes, signature: bytes) -> bool:
        work = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, work, True)
        (work / "data").write_bytes(data)
        (work / "data.asc").write_bytes(signature)
        with ResearcherKeyring() as verifier:
            verifier.run("--import", input_bytes=self.client.get("/pgp-key.txt", secure=True).content)
            result = verifier.run("--verify", str(work / "data.asc"), str(work / "data"))
        return result.returncode == 0 and b"Good signature" in result.stderr

    def test_team_email_is_signed_with_text_and_html_inside(self):
        self.submit()
        [team] = self.emails_to("security@security.example.com")
        raw = wire(team)
        self.assertEqual(parse(team).get_content_type(), "multipart/signed")
        data, signature = signed_parts(raw)
        self.assertIn(b"multipart/alternative", data)
        self.assertIn(b"text/html", data)
        self.assertTrue(self.verify_with_team_key(data, signature))

    def test_bad_keys_are_refused_with_a_clear_error(self):
        expired = researcher_key(self.researcher, uid="Old <old@example.com>", expire="1d",
                                 faked_time="20200101T000000!")
        sign_only = researcher_key(self.researcher, uid="Signer <s@example.com>", algo="ed25519", usage="sign")
        revoked = researcher_key(self.researcher, uid="Gone <gone@example.com>")
        revoke(self.researcher, revoked)
        secret = self.researcher.run("--armor", "--pinentry-mode", "loopback", "--passphrase", "",
                                     "--export-secret-keys", self.key).stdout.decode()
        cases = {
            export_public(self.researcher, expired): "This key has expired.",
            export_public(self.researcher, sign_only): "no usable encryption subkey",
            export_public(self.researcher, revoked): "This key has been revoked.",
            secret: "This is a secret (private) key.",
            "hello": "Paste an ASCII-armored public key",
            self.public.replace(self.public.splitlines()[5], "garbage"): "could not be read",
            self.public + "\n" + export_public(self.researcher, revoked): "a single public key",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n" + "A" * 70_000: "larger than 64 KiB",
        }
        for key, message in cases.items():
            with self.subTest(message):
                self.assertContains(self.submit_with_key(key), message, status_code=400)
        self.assertFalse(Report.objects.exists())

    def test_reporter_replaces_or_removes_their_key_on_the_status_page(self):
        self.submit()
        token = self.status_token_in(self.client.get("/report/received/", secure=True).content.decode())
        url = f"/status/{token}/key/"
        response = self.client.post(url, {"reporter_public_key": self.public}, secure=True, follow=True)
        self.assertContains(response, f"Emails to you are now encrypted to {self.key}.")
        self.assertEqual(Report.objects.get().reporter_key_fingerprint, self.key)
        bad = self.client.post(url, {"reporter_public_key": "nonsense"}, secure=True)
        # The page again, the error beside the field (once), what was typed kept, the section open.
        self.assertContains(bad, "Paste an ASCII-armored public key", count=1, status_code=400)
        self.assertNotContains(bad, "Paste your PGP public key", status_code=400)
        self.assertContains(bad, ">nonsense</textarea>", status_code=400)
        self.assertContains(bad, "<details open>", status_code=400)
        empty = self.client.post(url, {"reporter_public_key": ""}, secure=True)
        self.assertContains(empty, "Paste your PGP public key.", count=1, status_code=400)
        self.client.post(url, {"remove": "on"}, secure=True)
        report = Report.objects.get()
        self.assertEqual((report.reporter_key, report.reporter_key_fingerprint), ("", ""))
        self.assertEqual(list(report.events.filter(kind="key_changed").values_list("public", flat=True)), [True, True])

    def test_the_stored_key_is_a_minimal_copy_kept_out_of_the_team_keyring(self):
        self.submit_with_key()
        report = Report.objects.get()
        self.assertIn("BEGIN PGP PUBLIC KEY BLOCK", report.reporter_key)
        team_keyring = [key["fingerprint"] for key in pgp.team_gpg().list_keys()]
        self.assertEqual(team_keyring, [self.fingerprint])

    @override_settings(MAILERS={"default": {"BACKEND": "anymail.backends.postmark.EmailBackend"}},
                       ANYMAIL={"POSTMARK_SERVER_TOKEN": "x"})
    def test_a_mailer_that_cannot_carry_pgp_mime_never_sends_plaintext(self):
        self.submit_with_key()
        receipt = OutboundEmail.objects.get(kind="receipt")
        self.assertEqual(receipt.state, "failed")
        self.assertIn("cannot send PGP/MIME", receipt.last_error)
        self.assertEqual(self.emails_to("ada@researcher.example"), [])


@time_machine.travel(MONDAY_10AM, tick=False)
class OfflineKeyModeTests(BaseTestCase):
    """Only the team's public key is on the server: it encrypts, but cannot read or sign."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.offline = ResearcherKeyring().__enter__()  # stands in for the team's offline machine
        cls.fingerprint = researcher_key(cls.offline, uid="Team <security@security.example.com>")
        cls.home = tempfile.mkdtemp(prefix="disclosure-test-offline-")
        cls._settings = override_settings(GNUPG_HOME=Path(cls.home), TEAM_KEY_FINGERPRINT=cls.fingerprint)
        cls._settings.enable()
        cls.addClassCleanup(cls.offline.__exit__, None, None, None)
        cls.addClassCleanup(shutil.rmtree, cls.home, ignore_errors=True)
        cls.addClassCleanup(pgp.stop_agent, cls.home)
        cls.addClassCleanup(cls._settings.disable)
        pgp.import_team_key(export_public(cls.offline, cls.fingerprint))

    def setUp(self):
        super().setUp()
        pgp.forget()

    def test_staff_see_the_armored_block_and_a_notice_and_decrypt_offline(self):
        self.submit(report_data(description=SECRET))
        report = Report.objects.get()
        self.assertNotIn(SECRET, report.sealed_content)
        self.login(self.triager)
        page = self.client.get(f"/admin/disclosure/report/{report.pk}/change/")
        self.assertContains(page, "offline-key mode")
        self.assertContains(page, "jq -r .description")
        self.assertContains(page, "-----BEGIN PGP MESSAGE-----")
        self.assertNotContains(page, SECRET)
        decrypted = self.offline.run("--decrypt", input_bytes=report.sealed_content.encode())
        self.assertEqual(json.loads(decrypted.stdout)["description"], SECRET)

    def test_encrypted_submissions_are_checked_against_the_public_key(self):
        with ResearcherKeyring() as researcher:
            researcher.run("--import", input_bytes=export_public(self.offline, self.fingerprint).encode())
            armored = researcher.run("--trust-model", "always", "--encrypt", "--armor", "--recipient",
                                     self.fingerprint, input_bytes=b"hello team").stdout.decode()
            other = researcher_key(researcher, uid="Other <o@example.com>")
            wrong = researcher.run("--trust-model", "always", "--encrypt", "--armor", "--recipient", other,
                                   input_bytes=b"x").stdout.decode()
        self.assertEqual(self.submit(report_data(description=armored)).status_code, 302)
        self.assertContains(self.submit(report_data(description=wrong)), "encrypted to a different key",
                            status_code=400)

    def test_emails_go_out_unsigned(self):
        self.submit()
        [team] = self.emails_to("security@localhost")
        self.assertNotIsInstance(team, PGPMimeEmail)
        self.assertEqual(team.message().get_content_type(), "multipart/alternative")
