"""One row per message that reached the team's address, whichever way it came in.

The row is written before the message is filed (its ``key`` is unique: the same message
arriving twice, by a re-fetch, a webhook retry or two ways at once, finds the first row),
and filing updates it in the transaction that creates the report or message. Staff read
the list in the admin under *Inbound mail*: every ignored message is there with its reason.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def raw_path(instance, filename):
    # Random name, no extension: nothing the sender chose reaches the file system.
    return f"inbound/{timezone.now():%Y/%m}/{uuid.uuid4().hex}"


class InboundMailQuerySet(models.QuerySet):
    def purgeable(self, now):
        """Rows past the retention period that belong to no report (ignored auto-replies, loops,
        bounces of mail to purged reports, failures): a report's own rows go when it is purged."""
        cutoff = now - timedelta(days=settings.RETENTION_DAYS)
        return self.filter(report__isnull=True, arrived_at__lt=cutoff).exclude(state=InboundMail.State.PENDING)


class InboundMail(models.Model):
    class Source(models.TextChoices):
        IMAP = "imap", "IMAP mailbox"
        WEBHOOK = "webhook", "Mail provider webhook"
        PIPE = "pipe", "Pipe (ingest_email)"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be filed"
        DONE = "done", "Filed"
        FAILED = "failed", "Failed"

    class Outcome(models.TextChoices):
        NONE = "", "-"
        REPORT = "report", "New report"
        HELD = "held", "New report, held for review (over the limits)"
        SPAM = "spam", "New report, likely spam (DMARC failed)"
        REPLY = "reply", "Message on a report"
        OTHER_SENDER = "other_sender", "Message on a report, from another sender"
        CLOSED = "closed", "Ignored: reply to a closed report"
        BOUNCE = "bounce", "Bounce of one of our emails"
        AUTO_REPLY = "auto_reply", "Ignored: auto-reply"
        LOOP = "loop", "Ignored: our own email"
        MAILER_DAEMON = "mailer_daemon", "Ignored: from a mail server (not a bounce we sent)"

    class Signature(models.TextChoices):
        NONE = "", "Not signed"
        GOOD = "good", "Good signature from the reporter's key"
        UNKNOWN = "unknown", "Signed with a key we do not have"
        BAD = "bad", "Bad signature"

    key = models.CharField(max_length=64, unique=True, editable=False, help_text=(
        "SHA-256 of the sender and Message-ID (of the whole message when it has no Message-ID): the same "
        "message arriving twice is filed once."))
    header_message_id = models.CharField("Message-ID", max_length=300, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    source_detail = models.CharField(max_length=100, blank=True, help_text="The mail provider, for a webhook.")
    arrived_at = models.DateTimeField(db_index=True, help_text=(
        "When the message reached us (IMAP INTERNALDATE, the provider's timestamp, or when ingest_email ran): "
        "the clocks of a report start here."))
    created_at = models.DateTimeField(default=timezone.now)
    sender = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    raw = models.FileField(upload_to=raw_path, max_length=200, blank=True, help_text=(
        "The message as received while it waits to be filed; kept sealed when it was ignored (a report or "
        "message keeps its own sealed copy as an attachment)."))
    raw_encrypted = models.BooleanField(default=False)

    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True, default="")
    notes = models.TextField(blank=True, help_text="What filing noticed: attachments dropped, PGP, keys, limits.")
    signature = models.CharField(max_length=10, choices=Signature.choices, blank=True, default="")
    signature_detail = models.CharField(max_length=200, blank=True)
    report = models.ForeignKey("disclosure.Report", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="inbound_mail")
    message = models.ForeignKey("disclosure.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="inbound_mail")
    bounced_email = models.ForeignKey("disclosure.OutboundEmail", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="bounces")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    filed_at = models.DateTimeField(null=True, blank=True)

    objects = InboundMailQuerySet.as_manager()

    class Meta:
        ordering = ["-arrived_at", "-pk"]
        verbose_name = "inbound mail"
        verbose_name_plural = "inbound mail"
        indexes = [models.Index(fields=["created_at"], name="inbound_pending", condition=models.Q(state="pending"))]

    def __str__(self):
        return f"{self.sender or 'unknown sender'}: {self.subject or '(no subject)'}"

    def file_again(self) -> bool:
        """Put a failed row back to be filed (staff action): the filing starts over with a
        fresh count of attempts. False when it is not failed (filed or pending meanwhile)."""
        return bool(InboundMail.objects.filter(pk=self.pk, state=self.State.FAILED).update(
            state=self.State.PENDING, attempts=0, last_error=""))
