"""The one path every message takes, whichever way it came in (IMAP, webhook, pipe).

``receive()`` records the raw message as an ``InboundMail`` row (its key is unique, so a
message arriving twice finds the first row); ``file()`` parses, classifies and files it in
one transaction with what it creates (a report, a message on a report, a bounce mark),
and marks the row done in that same transaction. A crash before the commit leaves the row
pending, to be filed by the next attempt; after it, the row says it is done. So each
message is filed exactly once, and the IMAP poller moves it away only after the commit.
"""

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from mailparser_reply import EmailReplyParser

from disclosure import pgp, storage
from disclosure.inbound import classify, parse, pgpmail
from disclosure.inbound.models import InboundMail
from disclosure.pgp import sealing
from disclosure.uploads import safe_filename

log = logging.getLogger(__name__)
Outcome = InboundMail.Outcome
MAX_ATTEMPTS = 5
MAX_DESCRIPTION = 100_000
DEFAULT_TITLE = "Report received by email"
DMARC_FAIL = re.compile(r"\bdmarc\s*=\s*fail\b", re.IGNORECASE)


# --- Receiving ------------------------------------------------------------------------------
def receive(raw: bytes, *, arrived_at, source: str, source_detail: str = "") -> tuple[InboundMail, bool]:
    """Record one raw message before filing it. Returns the row and whether it is new (an
    existing row means the message arrived before: a re-fetch, a retry, another way in)."""
    mail = parse.ParsedMail(raw=raw)
    parse._read_headers(mail, parse.headers_only(raw))
    existing = InboundMail.objects.filter(key=mail.key).first()
    if existing is not None:
        return existing, False
    row = InboundMail(key=mail.key, header_message_id=mail.message_id[:300], source=source,
                      source_detail=source_detail[:100], arrived_at=arrived_at, sender=mail.sender[:320],
                      subject=mail.subject[:300], size=len(raw))
    row.raw.save("raw", ContentFile(raw), save=False)
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:  # the same message, received by another process meanwhile
        storage.discard(row.raw.name)
        return InboundMail.objects.get(key=mail.key), False
    except BaseException:
        storage.discard(row.raw.name)
        raise
    return row, True


def take(raw: bytes, *, arrived_at, source: str, source_detail: str = "") -> InboundMail:
    """Receive and file at once (the IMAP poller and ``ingest_email``). Raises only when the
    message could not be recorded (the caller keeps it and retries)."""
    row, _ = receive(raw, arrived_at=arrived_at, source=source, source_detail=source_detail)
    return file_safely(row.pk)


def file_safely(inbound_id: int, *, now=None) -> InboundMail:
    """``file()``, with a failure recorded on the row (retried by the next attempt, up to
    ``MAX_ATTEMPTS``; after that the row is failed and shown to staff)."""
    try:
        return file(inbound_id, now=now)
    except Exception as exc:
        log.exception("Filing inbound mail %s failed", inbound_id)
        row = InboundMail.objects.get(pk=inbound_id)
        row.attempts += 1
        row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if row.attempts >= MAX_ATTEMPTS:
            row.state = InboundMail.State.FAILED
        row.save(update_fields=["attempts", "last_error", "state"])
        return row


def file_pending(now=None, *, older_than=timedelta(minutes=2), limit: int = 50) -> int:
    """File rows left pending (a webhook's task that was lost, a crash): the sweep runs it."""
    now = now or timezone.now()
    pending = InboundMail.objects.filter(state=InboundMail.State.PENDING, created_at__lte=now - older_than)
    done = 0
    for pk in pending.order_by("created_at").values_list("pk", flat=True)[:limit]:
        done += file_safely(pk).state == InboundMail.State.DONE
    return done


# --- Filing ---------------------------------------------------------------------------------
def file(inbound_id: int, *, now=None) -> InboundMail:
    """Parse, classify and file one received message, once (see the module's docstring)."""
    with transaction.atomic():
        row = InboundMail.objects.select_for_update().filter(pk=inbound_id).first()
        if row is None or row.state != InboundMail.State.PENDING:
            return row
        with row.raw.open("rb") as handle:
            raw = handle.read()
        mail = parse.parse(raw)
        decision = classify.classify(mail)
        filing = _Filing(row, mail, raw)
        try:
            {
                Outcome.REPORT: filing.new_report,
                Outcome.REPLY: filing.reply,
                Outcome.OTHER_SENDER: filing.reply,
                Outcome.BOUNCE: filing.bounce,
            }.get(decision.outcome, filing.ignore)(decision)
        except BaseException:
            filing.remove_files()
            raise
        row.state, row.filed_at = InboundMail.State.DONE, now or timezone.now()
        row.save()
    return row


@dataclass
class _Filing:
    row: InboundMail
    mail: parse.ParsedMail
    raw: bytes

    def __post_init__(self):
        self.notes = list(self.mail.notes)
        self.created_files = []
        self.created_names = []

    def remove_files(self):
        """Files written for what this filing created: its transaction is rolling back."""
        for name in [attachment.file.name for attachment in self.created_files] + self.created_names:
            storage.discard(name)

    # --- What a message becomes -------------------------------------------------------------
    def new_report(self, decision):
        from disclosure import emails
        from disclosure.models import Channel, Event, IntakeHold, OutboundEmail, Report

        mail, row = self.mail, self.row
        key = self._attached_key()
        opened = pgpmail.open_mail(mail, key.armored if key else "")
        self._record_pgp(opened, key_label="the key attached to this email" if key else "")
        files = self._uploads()
        sender = mail.sender if _valid_email(mail.sender) else ""
        if mail.sender and not sender:
            self.notes.append(f"The sender's address ({mail.sender[:100]}) is not valid: no receipt was sent.")
        hold = self._hold(sender)
        fields = {
            "title": (mail.subject.strip() or DEFAULT_TITLE)[:200],
            "description": self._description(mail.text),
            "reporter_name": mail.sender_name[:200],
            "reporter_email": sender,
            "channel": Channel.EMAIL,
            "intake_hold": hold,
        }
        if key is not None:
            fields.update(reporter_key=key.armored, reporter_key_fingerprint=key.fingerprint)
            self.notes.append(f"The sender attached their PGP key ({key.fingerprint}); email to them is encrypted "
                              "to it.")
        report, _ = Report.submit(fields=fields, files=[*files, self._original()], now=row.arrived_at,
                                  submission_key=f"inbound:{row.key}")
        self.created_files += list(report.attachments.all())
        receipts = OutboundEmail.objects.filter(report=report, kind=OutboundEmail.Kind.RECEIPT)
        received = report.events.filter(kind=Event.Kind.RECEIVED).first()
        if received is not None:
            received.data = {"channel": "email", "from": sender, "signature": row.signature,
                             "inbound_mail": row.pk, "held": hold}
            received.save(update_fields=["data"])
        if hold:
            receipts.delete()  # no receipt: the portal must not send mail on a flood's behalf
            self.notes.append(IntakeHold(hold).label + ": no receipt was sent.")
        else:
            for receipt in receipts:
                self._thread_receipt(receipt, emails)
        row.report, row.outcome = report, {IntakeHold.RATE_LIMITED: Outcome.HELD,
                                           IntakeHold.DMARC_FAILED: Outcome.SPAM}.get(hold, Outcome.REPORT)
        self._finish(keep_raw=False)

    def reply(self, decision):
        report = decision.report
        key = self._attached_key() if not report.reporter_key else None
        opened = pgpmail.open_mail(self.mail, report.reporter_key or (key.armored if key else ""))
        self._record_pgp(opened, key_label="the reporter's key on file" if report.reporter_key else
                         ("the key attached to this email" if key else ""))
        other = decision.outcome == Outcome.OTHER_SENDER
        body = self._trimmed(self.mail.text)
        if other:
            body = f"[Sent by email from {self.mail.sender or 'an unknown sender'}, not the reporter's address.]" \
                   f"\n\n{body}"
        data = {"channel": "email", "from": self.mail.sender, "other_sender": other, "signature": self.row.signature,
                "inbound_mail": self.row.pk}
        event = report.add_reporter_message(body, [*self._uploads(), self._original()], now=self.row.arrived_at,
                                            data=data, answers=not other)
        self.created_files += list(event.message.attachments.all())
        if key is not None and not other and not report.reporter_key:
            report.set_reporter_key(key, now=self.row.arrived_at)
            self.notes.append(f"The reporter attached their PGP key ({key.fingerprint}); it is now their key.")
        self.row.report, self.row.message, self.row.outcome = report, event.message, decision.outcome
        self._finish(keep_raw=False)

    def bounce(self, decision):
        from disclosure.models import Event, OutboundEmail, Report

        bounced, now = decision.bounced, self.row.arrived_at
        OutboundEmail.objects.filter(pk=bounced.pk).update(bounced_at=now, bounce_detail=decision.reason[:300])
        report = bounced.report
        if report is not None and report.reporter_email and bounced.to.lower() == report.reporter_email.lower():
            Report.objects.filter(pk=report.pk).update(reporter_email_bounced_at=now)
            report.record(Event.Kind.EMAIL_BOUNCED, now=now, data={"email": bounced.pk, "detail": decision.reason})
        self.row.report, self.row.bounced_email, self.row.outcome = report, bounced, Outcome.BOUNCE
        self.notes.append(decision.reason)
        self._finish(keep_raw=True)

    def ignore(self, decision):
        from disclosure.models import Message

        self.row.outcome, self.row.report = decision.outcome, decision.report
        self.notes.append(decision.reason)
        if decision.outcome == Outcome.CLOSED:
            decision.report.add_note(None, f"A reply arrived by email from {self.mail.sender or 'an unknown sender'} "
                                           f"after the report was closed. It is kept under Inbound mail "
                                           f"(#{self.row.pk}).", now=self.row.arrived_at)
            self.row.message = Message.objects.filter(report=decision.report).order_by("-pk").first()
        self._finish(keep_raw=True)

    # --- Pieces ---------------------------------------------------------------------------
    def _finish(self, *, keep_raw: bool):
        """Notes on the row; the raw file removed (a report or message has its own sealed
        copy) or, for what is only logged, replaced by a sealed copy."""
        row = self.row
        row.notes = "\n".join(note for note in dict.fromkeys(self.notes) if note)[:10000]
        plain = row.raw.name
        if keep_raw:
            stored, row.raw_encrypted = sealing.seal_file(self.raw)
            row.raw.save("raw", ContentFile(stored), save=False)
            self.created_names.append(row.raw.name)
        else:
            row.raw = ""
        storage.delete_later(plain)

    def _record_pgp(self, opened, *, key_label: str):
        self.notes += opened.notes
        self.row.signature = opened.signature
        detail = opened.signature_detail
        if opened.signature == "good" and key_label:
            detail = f"{detail} ({key_label})"
        self.row.signature_detail = detail[:200]
        if opened.signature:
            self.notes.append(f"Signature: {InboundMail.Signature(opened.signature).label}"
                              + (f" ({self.row.signature_detail})" if self.row.signature_detail else "") + ".")

    def _attached_key(self):
        """The first attached public key that passes the reporter-key checks and names the sender."""
        for armored in self.mail.keys[:3]:
            try:
                key = pgp.inspect_reporter_key(armored)
            except pgp.PGPError as error:
                self.notes.append(f"An attached PGP key was not used: {error}")
                continue
            emails = {uid.rsplit("<", 1)[-1].rstrip(">").strip().lower() for uid in key.uids}
            if self.mail.sender.lower() in emails:
                return key
            self.notes.append(f"An attached PGP key ({key.fingerprint}) does not name the sender's address; "
                              "it was not used.")
        return None

    def _uploads(self) -> list:
        """The attachments within the form's limits; the rest dropped with a note (all of them
        when the message is larger than INBOUND_MAX_BYTES)."""
        parts = self.mail.attachments
        if self.row.size > settings.INBOUND_MAX_BYTES:
            if parts:
                self.notes.append(f"The email was larger than {filesizeformat(settings.INBOUND_MAX_BYTES)}, so its "
                                  f"{len(parts)} attachment(s) were not kept. Please send them again in smaller "
                                  "emails, or from your status page.")
            return []
        kept, total = [], 0
        for part in parts:
            size = len(part.data)
            if len(kept) >= settings.MAX_ATTACHMENTS:
                reason = f"more than {settings.MAX_ATTACHMENTS} files"
            elif size > settings.MAX_ATTACHMENT_BYTES:
                reason = f"larger than {filesizeformat(settings.MAX_ATTACHMENT_BYTES)}"
            elif total + size > settings.MAX_ATTACHMENTS_TOTAL_BYTES:
                reason = f"the files add up to more than {filesizeformat(settings.MAX_ATTACHMENTS_TOTAL_BYTES)}"
            else:
                kept.append(SimpleUploadedFile(safe_filename(part.name), part.data, content_type=part.content_type))
                total += size
                continue
            self.notes.append(f"The attachment {safe_filename(part.name)} was not kept ({reason}).")
        return kept

    def _original(self):
        """The message as received, for the team (sealed at rest like any attachment); only
        its headers when it is larger than INBOUND_MAX_BYTES."""
        if self.row.size > settings.INBOUND_MAX_BYTES:
            return SimpleUploadedFile("original-headers.eml", self.mail.header_bytes, content_type="message/rfc822")
        return SimpleUploadedFile("original-message.eml", self.raw, content_type="message/rfc822")

    def _description(self, text: str) -> str:
        text = text.strip() or "(The email has no text. The original message is attached.)"
        if len(text) > MAX_DESCRIPTION:
            self.notes.append("The text was shortened; the whole message is attached.")
            text = text[:MAX_DESCRIPTION] + "\n\n[... shortened: the whole message is attached]"
        return text

    def _trimmed(self, text: str) -> str:
        """The new part of a reply: quoted history and signature trimmed (the full message is attached)."""
        if pgp.looks_encrypted(text):
            return text
        try:
            latest = EmailReplyParser(languages=["en", "de", "fr", "es", "nl"]).parse_reply(text)
        except Exception:  # noqa: BLE001 - the parser is a convenience: keep the whole text
            latest = None
        body = (latest or "").strip() or text.strip() or "(The email has no text. The original message is attached.)"
        return body[:MAX_DESCRIPTION]

    def _hold(self, sender: str) -> str:
        from disclosure.models import Channel, IntakeHold, Report

        if self._dmarc_failed():
            return IntakeHold.DMARC_FAILED
        since = self.row.arrived_at - timedelta(hours=1)
        recent = Report.objects.filter(channel=Channel.EMAIL, received_at__gt=since,
                                       received_at__lte=self.row.arrived_at)
        if sender and recent.filter(reporter_email__iexact=sender).count() >= settings.INBOUND_SENDER_REPORTS_PER_HOUR:
            return IntakeHold.RATE_LIMITED
        if recent.count() >= settings.INBOUND_REPORTS_PER_HOUR:
            return IntakeHold.RATE_LIMITED
        return IntakeHold.NONE

    def _dmarc_failed(self) -> bool:
        trusted = settings.INBOUND_TRUSTED_AUTHSERV_ID
        if not trusted:
            return False
        for value in self.mail.headers.get("authentication-results", []):
            authserv = (value.split(";", 1)[0].split() or [""])[0].lower()
            if authserv == trusted and DMARC_FAIL.search(value):
                return True
        return False

    def _thread_receipt(self, receipt, emails):
        """Write the receipt now, as a reply to the researcher's email: ``Re:`` their subject,
        In-Reply-To/References their Message-ID, and what filing noticed."""
        now = self.row.filed_at or timezone.now()
        notes = [note for note in self.notes if "attachment" in note.lower() or "encrypted" in note.lower()
                 or "shortened" in note.lower()]
        emails._render(receipt, {**emails._context(receipt), "inbound_notes": notes}, now)
        subject = self.mail.subject.strip()
        if subject:
            prefix = "" if subject.lower().startswith("re:") else "Re: "
            receipt.subject = f"{prefix}{subject} [{receipt.report.tracking_id}]"[:300]
        if self.mail.message_id and len(self.mail.message_id) <= 200:
            receipt.references = self.mail.message_id
        receipt.save(update_fields=["subject", "body_text", "body_html", "rendered_at", "references"])


def _valid_email(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True
