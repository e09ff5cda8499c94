"""PGP in emailed reports: PGP/MIME (RFC 3156) and inline PGP, encrypted and signed.

Every gpg run goes through ``disclosure.pgp`` (keyring.py). Encrypted mail is decrypted
under the same rules as armored form fields (one complete block, one integrity-protected
message, capped output); its content is then sealed at rest like form content by
``Report.submit``/``add_reporter_message``. Signatures are checked with the reporter's key
on file (or the key attached to the email), in a throw-away keyring.
"""

import re
from dataclasses import dataclass, field

from django.conf import settings

from disclosure import pgp
from disclosure.inbound import parse

ARMORED_MESSAGE = re.compile(r"-----BEGIN PGP MESSAGE-----\r?\n.*?-----END PGP MESSAGE-----", re.DOTALL)
CLEARSIGNED = re.compile(r"-----BEGIN PGP SIGNED MESSAGE-----\r?\n.*?-----END PGP SIGNATURE-----", re.DOTALL)


@dataclass
class PgpResult:
    signature: str = ""  # InboundMail.Signature
    signature_detail: str = ""
    decrypted: bool = False
    notes: list[str] = field(default_factory=list)


def open_mail(mail: parse.ParsedMail, verify_key: str = "") -> PgpResult:
    """Decrypt what is encrypted to the team key (in place: ``mail.text`` and attachments
    become the plaintext's) and check any signature with ``verify_key``."""
    result = PgpResult()
    if mail.encrypted:
        _open_pgp_mime(mail, result, verify_key)
    if pgp.looks_encrypted(mail.text):
        _open_inline(mail, result, verify_key)
    _check_signature(mail, verify_key, result)
    return result


def _signed_inside(armored: str, verify_key: str, result, max_output: int) -> None:
    """Record the signature of a message signed and encrypted in one pass, if it has one."""
    try:
        check = pgp.signature_inside(armored, verify_key, max_output=max_output)
    except (pgp.PGPError, OSError, ValueError) as error:
        result.signature, result.signature_detail = "unknown", f"could not be checked: {error}"[:200]
        return
    if check is not None:
        result.signature = check.status
        result.signature_detail = check.fingerprint or (f"key ID {check.key_id}" if check.key_id else "")


def _open_pgp_mime(mail, result, verify_key=""):
    armored = mail.encrypted
    try:
        plaintext = pgp.decrypt_checked(armored, max_output=settings.INBOUND_MAX_BYTES)
    except pgp.PGPError as error:
        if _to_team_offline(armored):
            mail.text = armored.strip()  # kept as sent: staff decrypt it on their own machines
            result.notes.append("The email is encrypted to the team key, which cannot decrypt on this server: "
                                "its text is kept as sent, and its attachments are in the original message.")
        else:
            mail.text = ("[This email is encrypted, but the team key could not read it. The original message is "
                         "attached.]")
            result.notes.append(f"The email is encrypted and could not be read: {error}")
        return
    _signed_inside(armored, verify_key, result, settings.INBOUND_MAX_BYTES)
    parse.read_entity(mail, plaintext)
    result.decrypted = True
    result.notes.append("The email was encrypted to the team key (PGP/MIME) and was decrypted.")


def _to_team_offline(armored: str) -> bool:
    if not pgp.team_fingerprint() or pgp.can_decrypt():
        return False
    try:
        pgp.check_encrypted_to_team(armored)
    except pgp.PGPError:
        return False
    return True


def _open_inline(mail, result, verify_key=""):
    """Replace each armored block in the text by its plaintext; a block that cannot be read
    becomes a placeholder (the original message, kept sealed, still has it), so that the
    text around it is sealed at rest and not taken for a researcher-encrypted field."""
    text = mail.text
    if text.strip().startswith(pgp.BEGIN_MESSAGE) and _to_team_offline(text.strip()) \
            and len(ARMORED_MESSAGE.findall(text)) == 1 and ARMORED_MESSAGE.search(text).group(0) == text.strip():
        result.notes.append("The email is encrypted to the team key (inline PGP); it is kept as sent.")
        return

    def replace(match):
        try:
            plain = pgp.decrypt_checked(match.group(0), max_output=pgp.TEXT_MAX_OUTPUT)
        except pgp.PGPError as error:
            result.notes.append(f"An inline PGP message could not be read: {error}")
            return "[An encrypted block that could not be read here; it is in the original message.]"
        result.decrypted = True
        _signed_inside(match.group(0), verify_key, result, pgp.TEXT_MAX_OUTPUT)
        result.notes.append("Inline PGP text encrypted to the team key was decrypted.")
        return parse.clean_text(plain.decode("utf-8", "replace"))

    mail.text = ARMORED_MESSAGE.sub(replace, text)


def _check_signature(mail, verify_key, result):
    if mail.signed is not None:
        signed, signature = mail.signed
    else:
        match = CLEARSIGNED.search(mail.text)
        if not match:
            return
        signed, signature = match.group(0).replace("\n", "\r\n").encode("utf-8"), None
    try:
        check = pgp.verify_signature(signed, signature, verify_key)
    except (pgp.PGPError, OSError, ValueError) as error:
        result.signature, result.signature_detail = "unknown", f"could not be checked: {error}"[:200]
        return
    result.signature = check.status
    result.signature_detail = check.fingerprint or (f"key ID {check.key_id}" if check.key_id else "")
