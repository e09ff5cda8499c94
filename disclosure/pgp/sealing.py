"""Reporter content at rest: sealed to the team key on arrival, revealed on demand.

What is sealed, when ``STORE_ENCRYPTED`` is on and a team key is configured:
- a report's description, steps to reproduce and impact, together as one OpenPGP message
  (``Report.sealed_content``, JSON inside): one gpg run per submission;
- each message from the reporter, and each attachment.
Text or files the researcher encrypted to the team key themselves (pasted, or encrypted
in the browser) are kept exactly as they arrived.

Revealing decrypts with the team key when it can decrypt here. In offline-key mode (the
encryption secret kept elsewhere) the armored text is shown with a notice, for staff to
decrypt on their own machines. Nothing decrypted is kept anywhere: a page that shows
sealed content decrypts it when it is asked for, which is why the reporter's status page
links to their submitted text instead of showing it on every view.
"""

import json
from dataclasses import dataclass

from django.conf import settings
from django.utils.html import format_html

from disclosure import markdown
from disclosure.pgp import keyring as pgp

SEALED_REPORT_FIELDS = ("description", "steps_to_reproduce", "impact")
ENCRYPTED_SUFFIXES = (".asc", ".gpg", ".pgp")


def sealing_enabled() -> bool:
    return settings.STORE_ENCRYPTED and bool(pgp.team_fingerprint())


def seal_text(text: str) -> str:
    """One value (a reporter's message), unless it is empty or already encrypted."""
    if not text or pgp.looks_encrypted(text) or not sealing_enabled():
        return text
    return pgp.encrypt_to_team(text)


def seal_fields(values: dict[str, str]) -> tuple[dict[str, str], str]:
    """Seal every plain, non-empty value together as one message (one gpg run).

    Returns the values to store (those sealed emptied; the researcher's own encrypted ones
    as they are) and the sealed message ("" when nothing was sealed)."""
    plain = {name: value for name, value in values.items() if value and not pgp.looks_encrypted(value)}
    if not plain or not sealing_enabled():
        return dict(values), ""
    sealed = pgp.encrypt_to_team(json.dumps(plain, ensure_ascii=False, indent=1))
    return {name: "" if name in plain else value for name, value in values.items()}, sealed


def seal_file(data: bytes) -> tuple[bytes, bool]:
    """The bytes to store for an upload, and whether they are encrypted. An ASCII-armored
    PGP message (which the form checked is encrypted to the team key) is kept as sent."""
    if pgp.is_armored_message_file(data):
        return data, True
    if sealing_enabled():
        return pgp.encrypt_to_team(data, armor=False), True
    return data, False


def _can_decrypt() -> bool:
    """Whether to try decrypting here; gpg missing or a broken keyring reads as "no"."""
    try:
        return pgp.can_decrypt()
    except (pgp.PGPError, OSError):
        return False


def open_file(data: bytes, name: str) -> tuple[bytes, str]:
    """A stored attachment's content and name for a download: decrypted when the team key
    can decrypt here (the ``.asc`` an encrypting browser added is dropped from the name);
    otherwise the stored ciphertext, named so that it reads as one."""
    if _can_decrypt():
        try:
            return pgp.decrypt(data), strip_encrypted_suffix(name) or "attachment"
        except pgp.PGPError:
            pass
    return data, name if name.endswith(ENCRYPTED_SUFFIXES) else name + ".gpg"


def open_file_stream(handle, name: str):
    """``open_file`` for an open stored file, without holding it in memory: returns an open
    file of the plaintext (a private temporary file, already unlinked) and its name, or
    ``handle`` itself, rewound, with the ciphertext's name. Closes ``handle`` when it
    returns something else."""
    if _can_decrypt():
        try:
            plain = pgp.decrypt_to_file(handle)
        except pgp.PGPError:
            pass
        else:
            handle.close()
            return plain, strip_encrypted_suffix(name) or "attachment"
        handle.seek(0)
    return handle, name if name.endswith(ENCRYPTED_SUFFIXES) else name + ".gpg"


def strip_encrypted_suffix(name: str) -> str:
    for suffix in ENCRYPTED_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


@dataclass(frozen=True)
class Revealed:
    text: str
    sealed: bool  # stored encrypted
    readable: bool  # ``text`` is the plaintext (else: the armored message)
    holds_fields: bool = False  # the armored message of a report's fields, sealed together


def reveal(text: str) -> Revealed:
    """One stored value, decrypted when it is sealed and the team key can decrypt here."""
    if not pgp.looks_encrypted(text):
        return Revealed(text, False, True)
    if _can_decrypt():
        try:
            return Revealed(pgp.decrypt(text, max_output=pgp.TEXT_MAX_OUTPUT).decode("utf-8", "replace"), True, True)
        except pgp.PGPError:
            pass
    return Revealed(text, True, False)


def reveal_fields(values: dict[str, str], sealed_message: str) -> dict[str, Revealed]:
    """A report's text fields: the one sealed message decrypted in one gpg run, and any
    value the researcher encrypted themselves. When the sealed message cannot be decrypted
    here it is shown (once, in place of the first field it holds) for staff to decrypt."""
    revealed = {name: reveal(value) for name, value in values.items()}
    if not sealed_message:
        return revealed
    inside = None
    if _can_decrypt():
        try:
            inside = json.loads(pgp.decrypt(sealed_message, max_output=len(values) * pgp.TEXT_MAX_OUTPUT))
        except (pgp.PGPError, ValueError):
            inside = None
    if isinstance(inside, dict):
        revealed.update({name: Revealed(str(value), True, True) for name, value in inside.items() if name in values})
    else:
        first = next(iter(values))
        revealed[first] = Revealed(sealed_message, True, False, holds_fields=True)
    return revealed


OFFLINE_NOTICE = ("Encrypted to the team key, which cannot decrypt on this server (offline-key mode). Copy the "
                  "block and decrypt it on your own machine: <code>gpg --decrypt</code>{}.")


FIELDS_HINT = " (the report's fields are inside, as JSON: <code>gpg --decrypt | jq -r .description</code>)"


def as_html(value: "Revealed | str"):
    """Markdown for plain or decrypted text; the armored block with a notice otherwise."""
    revealed = value if isinstance(value, Revealed) else reveal(value)
    if revealed.readable:
        return markdown.render(revealed.text)
    notice = OFFLINE_NOTICE.format(FIELDS_HINT if revealed.holds_fields else "")  # constants only
    return format_html('<p class="sealed-notice">' + notice + '</p><pre class="sealed">{}</pre>', revealed.text)
