"""PGP/MIME (RFC 3156) for outgoing email: signed, or signed then encrypted.

``PGPMimeEmail`` is a Django email whose MIME structure is replaced, when the message is
generated, by ``multipart/signed`` (text and HTML alternatives inside, signed with the team
key) or ``multipart/encrypted`` (a signed text-only body encrypted to the reporter's key;
no plaintext and no HTML alternative anywhere). Only mailers that send the MIME Django
builds can carry it (SMTP, console, file, memory, and anymail's Amazon SES, which sends
raw MIME); see ``disclosure.checks``.
"""

import email.policy
from email.message import EmailMessage as MIMEMessage
from email.message import MIMEPart

from django.core.mail import EmailMultiAlternatives

from disclosure.pgp import keyring as pgp

CANONICAL = email.policy.SMTP  # CRLF line endings: the form that is signed and encrypted

MIME_CAPABLE_BACKENDS = {
    "django.core.mail.backends.smtp.EmailBackend",
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "anymail.backends.amazon_ses.EmailBackend",
    "anymail.backends.test.EmailBackend",
}


def _body(text: str, html: str | None) -> MIMEPart:
    part = MIMEPart(policy=CANONICAL)
    part.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html:
        part.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return part


def _reparse(part: MIMEPart) -> tuple[bytes, MIMEPart]:
    """Serialise canonically and parse back, so what was signed is what is sent."""
    data = part.as_bytes(policy=CANONICAL)
    parsed = email.message_from_bytes(data, _class=MIMEPart, policy=CANONICAL)
    return data, parsed


def signed(entity: MIMEPart) -> MIMEPart:
    data, inner = _reparse(entity)
    signature, micalg = pgp.detached_sign(data)
    container = MIMEPart(policy=CANONICAL)
    container.make_mixed()
    container.replace_header("Content-Type", "multipart/signed")
    container.set_param("micalg", micalg)
    container.set_param("protocol", "application/pgp-signature")
    sig = MIMEPart(policy=CANONICAL)
    sig.set_content(signature.encode("ascii"), maintype="application", subtype="pgp-signature", cte="7bit",
                    filename="signature.asc")
    sig.replace_header("Content-Disposition", 'attachment; filename="signature.asc"')
    sig["Content-Description"] = "OpenPGP digital signature"
    container.attach(inner)
    container.attach(sig)
    return container


def encrypted(entity: MIMEPart, public_key: str) -> MIMEPart:
    data, _ = _reparse(entity)
    ciphertext = pgp.encrypt_for(public_key, data)
    container = MIMEPart(policy=CANONICAL)
    container.make_mixed()
    container.replace_header("Content-Type", "multipart/encrypted")
    container.set_param("protocol", "application/pgp-encrypted")
    control = MIMEPart(policy=CANONICAL)
    control.set_content(b"Version: 1\r\n", maintype="application", subtype="pgp-encrypted", cte="7bit")
    control["Content-Description"] = "PGP/MIME version identification"
    payload = MIMEPart(policy=CANONICAL)
    payload.set_content(ciphertext.encode("ascii"), maintype="application", subtype="octet-stream", cte="7bit",
                        filename="encrypted.asc", disposition="inline")
    payload["Content-Description"] = "OpenPGP encrypted message"
    container.attach(control)
    container.attach(payload)
    return container


class PGPMimeEmail(EmailMultiAlternatives):
    """An email signed with the team key (``sign``) and/or encrypted to ``encrypt_to``."""

    def __init__(self, *args, sign: bool = False, encrypt_to: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.sign, self.encrypt_to = sign, encrypt_to

    def message(self, *, policy=email.policy.default):
        outer = super().message(policy=policy)
        html = None if self.encrypt_to else next(
            (content for content, mimetype in self.alternatives if mimetype == "text/html"), None)
        entity = _body(self.body, html)
        if self.sign:
            entity = signed(entity)
        if self.encrypt_to:
            entity = encrypted(entity, self.encrypt_to)
        message = MIMEMessage(policy=policy)
        for name, value in outer.items():
            if name.lower() not in ("content-type", "content-transfer-encoding", "mime-version"):
                message[name] = value
        message["MIME-Version"] = "1.0"
        message["Content-Type"] = entity["Content-Type"]
        message.set_payload(entity.get_payload())
        return message
