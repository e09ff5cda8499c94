"""Reporter content at rest: sealed (encrypted to the team key) and revealed on demand.

A text value is sealed when it is an ASCII-armored PGP message: either the researcher sent
it that way (in the form, or encrypted in the browser), or the portal encrypted it on
arrival because ``STORE_ENCRYPTED`` is on and a team key is configured. Revealing decrypts
with the team's secret key when the server holds it; in offline-key mode the armored text
is shown with a notice, for staff to decrypt on their own machines.
"""

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.utils.html import format_html

from disclosure import markdown, pgp

SEALED_REPORT_FIELDS = ("description", "steps_to_reproduce", "impact")
ENCRYPTED_SUFFIXES = (".asc", ".gpg", ".pgp")


def sealing_enabled() -> bool:
    return settings.STORE_ENCRYPTED and bool(pgp.team_fingerprint())


def seal_text(text: str) -> str:
    if not text or pgp.looks_encrypted(text) or not sealing_enabled():
        return text
    return pgp.encrypt_to_team(text)


@dataclass(frozen=True)
class Revealed:
    text: str
    sealed: bool
    readable: bool


# Decrypting costs 10-20 ms of gpg per value, too much for every view of a page. Recently
# decrypted values are kept in this process's memory only (never in a shared cache or on
# disk, which would undo the encryption at rest), for a few minutes.
_plain: OrderedDict[str, tuple[str, float]] = OrderedDict()
_plain_lock = threading.Lock()
PLAIN_CACHE_SIZE = 512
PLAIN_CACHE_SECONDS = 600


def _decrypt_remembered(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    now = time.monotonic()
    with _plain_lock:
        hit = _plain.get(digest)
        if hit and now - hit[1] < PLAIN_CACHE_SECONDS:
            _plain.move_to_end(digest)
            return hit[0]
    plain = pgp.decrypt(text, max_output=pgp.TEXT_MAX_OUTPUT).decode("utf-8", "replace")
    with _plain_lock:
        _plain[digest] = (plain, now)
        while len(_plain) > PLAIN_CACHE_SIZE:
            _plain.popitem(last=False)
    return plain


def reveal(text: str) -> Revealed:
    if not pgp.looks_encrypted(text):
        return Revealed(text, False, True)
    if pgp.can_decrypt():
        try:
            return Revealed(_decrypt_remembered(text), True, True)
        except pgp.PGPError:
            pass
    return Revealed(text, True, False)


def as_html(text: str):
    """Markdown for plain or decrypted text; the armored block with a notice otherwise."""
    revealed = reveal(text)
    if revealed.readable:
        return markdown.render(revealed.text)
    return format_html(
        '<p class="sealed-notice">Encrypted to the team key, which is not on this server (offline-key mode). '
        'Copy the block and decrypt it on your own machine: <code>gpg --decrypt</code>.</p>'
        '<pre class="sealed">{}</pre>',
        revealed.text)
