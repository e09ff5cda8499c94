"""Raw RFC 5322 bytes -> a ``ParsedMail``: the few things filing needs, read defensively.

Nothing here raises on bad input: broken header encodings, unknown or legacy charsets
(ISO-8859-1 read as Windows-1252, Shift_JIS, UTF-7), 8-bit bytes without a charset,
missing Message-ID or Date and nested messages all give a usable result. HTML-only mail is
converted to plain text (Markdown, rendered later through the same sanitiser as form text).
No gpg here: PGP parts are found and handed to ``disclosure.inbound.pgpmail``.
"""

import codecs
import email
import email.header
import email.utils
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, HeaderParser

import html2text

MAX_DEPTH = 10  # nesting of multiparts we follow; deeper parts are kept in the original .eml only
MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
ANGLE_ADDRESS = re.compile(r"<([^<>@\s]+@[^<>@\s]+)>")
BARE_ADDRESS = re.compile(r"([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)")
# Which decoder to use for a declared charset: ISO-8859-1 is Windows-1252 in practice (as
# browsers read it), and labels that name no charset are guessed.
CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "utf-8",
                   "ascii": "utf-8", "unknown-8bit": "", "x-unknown": "", "default": "", "8bit": ""}


@dataclass
class Part:
    name: str
    content_type: str
    data: bytes


@dataclass
class Bounce:
    original_message_id: str
    detail: str


@dataclass
class ParsedMail:
    raw: bytes
    message_id: str = ""
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    sender: str = ""
    sender_name: str = ""
    recipients: list[str] = field(default_factory=list)
    subject: str = ""
    text: str = ""
    from_html: bool = False
    attachments: list[Part] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    headers: dict[str, list[str]] = field(default_factory=dict)
    bounce: Bounce | None = None
    is_report: bool = False  # multipart/report (a DSN or similar)
    encrypted: str = ""  # the armored payload of a PGP/MIME encrypted message
    signed: tuple[bytes, bytes] | None = None  # PGP/MIME: (signed bytes, canonical CRLF; signature)
    notes: list[str] = field(default_factory=list)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    @property
    def key(self) -> str:
        """The duplicate key: sender and Message-ID, or the whole message without one."""
        if self.message_id:
            return hashlib.sha256(f"{self.sender.lower()}\n{self.message_id}".encode()).hexdigest()
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def header_bytes(self) -> bytes:
        """The message's header section as received."""
        match = re.search(rb"\r?\n\r?\n", self.raw)
        return self.raw[:match.end()] if match else self.raw


def parse(raw: bytes) -> ParsedMail:
    """Parse a whole message (``parse_headers`` first: they are read even from a body that fails)."""
    mail = ParsedMail(raw=raw)
    message = email.message_from_bytes(raw, policy=policy.default)
    _read_headers(mail, message)
    try:
        _read_body(mail, message, raw)
    except Exception as exc:  # noqa: BLE001 - a body we cannot read still files from its headers
        mail.notes.append(f"Part of the message could not be read ({type(exc).__name__}); the original is attached.")
    return mail


def read_entity(mail: ParsedMail, raw: bytes) -> None:
    """Read a decrypted PGP/MIME payload (a MIME entity) into ``mail``'s text and attachments."""
    entity = email.message_from_bytes(raw, policy=policy.default)
    mail.text, mail.attachments, mail.from_html = "", [], False
    _read_body(mail, entity, raw)


# --- Headers --------------------------------------------------------------------------------
def header_value(message: Message, name: str) -> str:
    """One header as text, whatever its encoding (broken encoded-words are kept as written)."""
    try:
        value = message.get(name)
        return _clean_line(str(value)) if value is not None else ""
    except Exception:  # noqa: BLE001 - fall back to decoding the raw value ourselves
        for key, value in message.raw_items():
            if key.lower() == name.lower():
                return _clean_line(_decode_words(str(value)))
        return ""


def _all_values(message: Message, name: str) -> list[str]:
    values = []
    for key, value in message.raw_items():
        if key.lower() == name:
            try:
                values.append(_clean_line(str(value)))
            except Exception:  # noqa: BLE001
                values.append(_clean_line(_decode_words(str(value))))
    return values


def _decode_words(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:  # noqa: BLE001 - unknown charset in an encoded word, or a broken one
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _clean_line(value: str) -> str:
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join("".join(ch for ch in value if unicodedata.category(ch) != "Cc" or ch in " \t").split())


def _message_ids(value: str) -> list[str]:
    return [match.lower() for match in MESSAGE_ID.findall(value or "")]


def _read_headers(mail: ParsedMail, message: Message) -> None:
    interesting = ("auto-submitted", "x-autoreply", "x-autorespond", "precedence", "authentication-results",
                   "list-id", "x-failed-recipients", "return-path", "x-auto-response-suppress",
                   "delivered-to", "x-original-to")
    mail.headers = {name: _all_values(message, name) for name in interesting}
    ids = _message_ids(header_value(message, "Message-ID"))
    mail.message_id = ids[0] if ids else ""
    mail.in_reply_to = _message_ids(header_value(message, "In-Reply-To"))
    mail.references = _message_ids(header_value(message, "References"))
    name, address = email.utils.parseaddr(header_value(message, "From"))
    if "@" not in (address or ""):  # a From header the parser could not read: find the address in it
        raw_from = " ".join(str(value) for key, value in message.raw_items() if key.lower() == "from")
        found = ANGLE_ADDRESS.search(raw_from) or BARE_ADDRESS.search(raw_from)
        address = found.group(1) if found else ""
        name = _clean_line(raw_from.split("<", 1)[0]).strip(' "') if found else ""
    mail.sender, mail.sender_name = (address or "").strip()[:254], name.strip()[:200]
    recipients = []
    for header in ("To", "Cc", "Delivered-To", "X-Original-To"):
        for value in _all_values(message, header.lower()):
            recipients += [addr for _, addr in email.utils.getaddresses([value]) if addr]
    mail.recipients = recipients
    mail.subject = header_value(message, "Subject")[:300]


# --- Body -----------------------------------------------------------------------------------
def _read_body(mail: ParsedMail, message: Message, raw: bytes) -> None:
    ctype = message.get_content_type()
    if ctype == "multipart/encrypted":
        parts = list(_parts(message))
        if len(parts) == 2 and parts[0].get_content_type() == "application/pgp-encrypted":
            mail.encrypted = _text_of(parts[1])
            return
    if ctype == "multipart/signed" and message.get_param("protocol") == "application/pgp-signature":
        parts = list(_parts(message))
        signed = _signed_bytes(raw, message.get_boundary())
        if len(parts) == 2 and signed is not None:
            mail.signed = (signed, parts[1].get_payload(decode=True) or b"")
            texts, htmls = [], []
            _walk(parts[0], mail, texts, htmls, 1)
            _choose_text(mail, texts, htmls)
            return
    if ctype == "multipart/report":
        mail.is_report = True
        mail.bounce = _bounce(message)
    texts, htmls = [], []
    _walk(message, mail, texts, htmls, 0)
    _choose_text(mail, texts, htmls)


def _parts(message: Message):
    try:
        return list(message.iter_parts()) if isinstance(message, EmailMessage) else message.get_payload()
    except Exception:  # noqa: BLE001
        return []


def _signed_bytes(raw: bytes, boundary: str | None) -> bytes | None:
    """The first part of a multipart/signed as it was sent, in canonical CRLF form (RFC 3156)."""
    if not boundary:
        return None
    marker = re.escape(b"--" + boundary.encode("ascii", "replace"))
    match = re.search(rb"(?:^|\n)" + marker + rb"[ \t]*\r?\n(.*?)\r?\n" + marker, raw, re.DOTALL)
    if not match:
        return None
    return re.sub(rb"\r?\n", b"\r\n", match.group(1))


def _walk(part: Message, mail: ParsedMail, texts: list, htmls: list, depth: int) -> None:
    ctype = part.get_content_type()
    if ctype == "message/rfc822":
        _attach(mail, part, "forwarded-message.eml", _embedded_bytes(part))
        return
    if part.is_multipart():
        if depth >= MAX_DEPTH:
            mail.notes.append("A deeply nested part was not read; it is in the original message.")
            return
        for sub in _parts(part):
            if isinstance(sub, Message):
                _walk(sub, mail, texts, htmls, depth + 1)
        return
    filename = _filename(part)
    disposition = part.get_content_disposition()
    if ctype in ("application/pgp-signature", "application/pgp-encrypted"):
        return
    if ctype == "text/plain" and disposition != "attachment" and not filename:
        texts.append(_text_of(part))
    elif ctype == "text/html" and disposition != "attachment" and not filename:
        htmls.append(_text_of(part))
    elif ctype in ("message/delivery-status", "text/rfc822-headers", "message/global-delivery-status"):
        texts.append(_text_of(part) if not part.is_multipart() else "")
    else:
        data = _payload(part)
        if ctype == "application/pgp-keys" or b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data[:4096]:
            mail.keys.append(data.decode("ascii", "replace"))
        _attach(mail, part, filename or _default_name(ctype), data)


def _attach(mail: ParsedMail, part: Message, name: str, data: bytes) -> None:
    mail.attachments.append(Part(name, part.get_content_type()[:100], data))


def _embedded_bytes(part: Message) -> bytes:
    try:
        inner = part.get_payload(0)
        return inner.as_bytes(policy=policy.compat32)
    except Exception:  # noqa: BLE001
        try:
            return part.as_bytes(policy=policy.compat32)
        except Exception:  # noqa: BLE001
            return b""


def _filename(part: Message) -> str:
    try:
        return part.get_filename() or ""
    except Exception:  # noqa: BLE001
        return ""


def _default_name(ctype: str) -> str:
    extension = {"application/zip": ".zip", "application/pdf": ".pdf", "image/png": ".png",
                 "image/jpeg": ".jpg", "text/plain": ".txt", "text/html": ".html"}.get(ctype, ".bin")
    return "attachment" + extension


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        data = None
    if data is None:
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    return data


def _text_of(part: Message) -> str:
    """A text part's content, decoded by its declared charset when that works."""
    data = _payload(part)
    declared = (part.get_content_charset() or "").lower()
    charset = CHARSET_ALIASES.get(declared, declared)
    text = None
    if charset:
        try:
            codecs.lookup(charset)
            text = data.decode(charset)
        except (LookupError, UnicodeDecodeError, ValueError):
            text = None
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    return clean_text(text)


def clean_text(text: str) -> str:
    """Text as the form would accept it: no control characters but tabs and line breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc" or ch in "\t\n")


def html_to_text(html: str) -> str:
    """Readable Markdown from HTML: no images, scripts or styles; links kept as text."""
    converter = html2text.HTML2Text()
    converter.ignore_images = True
    converter.body_width = 0
    converter.unicode_snob = True
    return clean_text(converter.handle(html)).strip()


def _choose_text(mail: ParsedMail, texts: list, htmls: list) -> None:
    plain = "\n\n".join(text for text in texts if text.strip())
    if plain.strip():
        mail.text = plain.strip()
    elif htmls:
        mail.text, mail.from_html = html_to_text("\n".join(htmls)), True


# --- Delivery status notifications (RFC 3464) ----------------------------------------------
def _bounce(message: Message) -> Bounce | None:
    original, detail = "", []
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for block in part.get_payload() if isinstance(part.get_payload(), list) else []:
                for name in ("Final-Recipient", "Action", "Status", "Diagnostic-Code"):
                    if block.get(name):
                        detail.append(f"{name}: {_clean_line(str(block.get(name)))}")
        elif ctype == "message/rfc822" and not original:
            try:
                inner = part.get_payload(0)
                original = (_message_ids(str(inner.get("Message-ID", ""))) or [""])[0]
            except Exception:  # noqa: BLE001, S110 - a broken returned message names nothing
                original = ""
        elif ctype == "text/rfc822-headers" and not original:
            headers = HeaderParser().parsestr(_text_of(part))
            original = (_message_ids(str(headers.get("Message-ID", ""))) or [""])[0]
    if not original:
        return None
    return Bounce(original, "; ".join(detail)[:300])


def headers_only(raw: bytes) -> Message:
    return BytesHeaderParser(policy=policy.default).parsebytes(raw)
