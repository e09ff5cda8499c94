"""PGP in emailed reports, with real gpg: PGP/MIME and inline PGP encrypted to the team key,
signed mail checked against the reporter's key, mail to another key, an attached key."""

from disclosure.inbound.models import InboundMail
from disclosure.models import OutboundEmail, Report
from tests.base import BaseTestCase, make_report
from tests.inbound import FRIDAY_1630, take
from tests.pgp_keys import TEAM_EMAIL, ResearcherKeyring, TeamKeyMixin, export_public, researcher_key

HEADERS = ("From: Ada Researcher <ada@researcher.example>\r\nTo: security@security.example.com\r\n"
           "Subject: {subject}\r\nMessage-ID: <{mid}@researcher.example>\r\n{extra}MIME-Version: 1.0\r\n")
INNER = (b"Content-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
         b"Secret details: the admin token is in /debug.\r\n--in\r\nContent-Type: text/plain\r\n"
         b"Content-Disposition: attachment; filename=poc.py\r\n\r\nprint('poc')\r\n--in--\r\n")


class InboundPgpTests(TeamKeyMixin, BaseTestCase):
    def setUp(self):
        super().setUp()
        self.researcher = ResearcherKeyring().__enter__()
        self.addCleanup(self.researcher.__exit__, None, None, None)
        self.researcher_fpr = researcher_key(self.researcher)
        team_public = self.client.get("/pgp-key.txt").content
        assert self.researcher.run("--import", input_bytes=team_public).returncode == 0

    def gpg(self, *args, data: bytes) -> bytes:
        result = self.researcher.run("--trust-model", "always", *args, input_bytes=data)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def encrypted(self, data: bytes, recipient=None) -> str:
        return self.gpg("--armor", "--encrypt", "--recipient", recipient or self.fingerprint, data=data).decode()

    def file(self, raw):
        with self.captureOnCommitCallbacks(execute=True):
            return take(raw, arrived_at=FRIDAY_1630)

    def pgp_mime(self, armored: str, mid="enc-1") -> bytes:
        return (HEADERS.format(subject="Encrypted report", mid=mid, extra="")
                + 'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="enc"\r\n\r\n'
                + "--enc\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
                + '--enc\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
                + armored + "\r\n--enc--\r\n").encode()

    def signed_mime(self, text: bytes, mid="sig-1", tamper=False, extra="") -> bytes:
        # RFC 3156: the signed entity ends before the CRLF that precedes the next boundary.
        part = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
        signature = self.gpg("--armor", "--detach-sign", data=part).decode()
        if tamper:
            part = part.replace(b"text", b"TEXT")
        return (HEADERS.format(subject="Signed report", mid=mid, extra=extra).encode()
                + b'Content-Type: multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; '
                + b'boundary="sig"\r\n\r\n--sig\r\n' + part + b"\r\n--sig\r\n"
                + b'Content-Type: application/pgp-signature; name="signature.asc"\r\n\r\n'
                + signature.encode() + b"\r\n--sig--\r\n")

    def test_pgp_mime_encrypted_to_the_team_is_decrypted_and_sealed_at_rest(self):
        row = self.file(self.pgp_mime(self.encrypted(INNER)))
        report = Report.objects.get()
        self.assertEqual(row.outcome, "report")
        self.assertIn("decrypted", row.notes)
        self.assertEqual(report.description, "")  # sealed with the other fields
        self.assertIn("-----BEGIN PGP MESSAGE-----", report.sealed_content)
        self.assertIn("the admin token is in /debug", report.content()["description"].text)
        poc = report.attachments.get(original_name="poc.py")
        self.assertTrue(poc.encrypted)
        self.assertEqual(poc.read_plain()[0], b"print('poc')")
        original = report.attachments.get(original_name="original-message.eml")
        self.assertTrue(original.encrypted)

    def test_inline_pgp_encrypted_to_the_team_is_decrypted(self):
        armored = self.encrypted(b"Inline secret: SSRF via /fetch?url=")
        raw = (HEADERS.format(subject="Inline", mid="inline-1", extra="")
               + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + armored.replace("\n", "\r\n")).encode()
        self.file(raw)
        self.assertIn("Inline secret: SSRF", Report.objects.get().content()["description"].text)

    def test_mail_encrypted_to_another_key_is_filed_with_a_note(self):
        other = researcher_key(self.researcher, uid="Someone Else <else@example.com>")
        row = self.file(self.pgp_mime(self.encrypted(INNER, recipient=other), mid="other-1"))
        report = Report.objects.get()
        self.assertIn("could not read it", report.content()["description"].text)
        self.assertIn("could not be read", row.notes)
        self.assertEqual(len(self.emails_to("ada@researcher.example")), 1)  # a receipt still goes out

    def test_a_signed_reply_is_checked_against_the_reporters_key_on_file(self):
        with self.captureOnCommitCallbacks(execute=True):
            report, _ = make_report()
        from disclosure import pgp
        report.set_reporter_key(pgp.inspect_reporter_key(export_public(self.researcher, self.researcher_fpr)))
        receipt = OutboundEmail.objects.get(report=report, kind=OutboundEmail.Kind.RECEIPT)
        extra = f"In-Reply-To: {receipt.message_id}\r\n"
        good = self.file(self.signed_mime(b"Signed answer: Chrome 131.", mid="s-good", extra=extra))
        bad = self.file(self.signed_mime(b"Signed answer: text tampered.", mid="s-bad", tamper=True, extra=extra))
        self.assertEqual((good.outcome, good.signature), ("reply", InboundMail.Signature.GOOD))
        self.assertIn(self.researcher_fpr, good.signature_detail)
        self.assertEqual(bad.signature, InboundMail.Signature.BAD)
        event = report.events.filter(kind="reporter_message").first()
        self.assertEqual(event.data["signature"], "good")

    def test_a_reply_signed_and_encrypted_in_one_pass_is_checked_against_the_key_on_file(self):
        with self.captureOnCommitCallbacks(execute=True):
            report, _ = make_report()
        from disclosure import pgp
        report.set_reporter_key(pgp.inspect_reporter_key(export_public(self.researcher, self.researcher_fpr)))
        receipt = OutboundEmail.objects.get(report=report, kind=OutboundEmail.Kind.RECEIPT)
        extra = f"In-Reply-To: {receipt.message_id}\r\n"
        armored = self.gpg("--armor", "--sign", "--encrypt", "--recipient", self.fingerprint,
                           data=b"Content-Type: text/plain\r\n\r\nSigned and sealed: Chrome 131.").decode()
        raw = self.pgp_mime(armored, mid="se-1").replace(b"Subject:", extra.encode() + b"Subject:", 1)
        row = self.file(raw)
        self.assertEqual((row.outcome, row.signature), ("reply", InboundMail.Signature.GOOD))
        self.assertIn(self.researcher_fpr, row.signature_detail)
        unsigned = self.file(self.pgp_mime(self.encrypted(INNER), mid="e-only"))
        self.assertEqual(unsigned.signature, "")  # encrypted only: nothing to check

    def test_a_signed_new_report_without_a_key_on_file_is_unknown_and_an_attached_key_is_offered(self):
        unknown = self.file(self.signed_mime(b"A signed report.", mid="s-unknown"))
        self.assertEqual(unknown.signature, InboundMail.Signature.UNKNOWN)
        key = export_public(self.researcher, self.researcher_fpr)
        raw = (HEADERS.format(subject="Report with my key", mid="with-key", extra="")
               + "Content-Type: multipart/mixed; boundary=k\r\n\r\n--k\r\nContent-Type: text/plain\r\n\r\n"
               + "Please encrypt replies to me.\r\n--k\r\nContent-Type: application/pgp-keys; name=key.asc\r\n"
               + "Content-Disposition: attachment; filename=key.asc\r\n\r\n" + key + "\r\n--k--\r\n").encode()
        self.file(raw)
        report = Report.objects.get(title="Report with my key")
        self.assertEqual(report.reporter_key_fingerprint, self.researcher_fpr)
        self.assertEqual(TEAM_EMAIL, "security@security.example.com")
