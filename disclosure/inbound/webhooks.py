"""Mail providers' inbound webhooks, through django-anymail's normalised inbound signal.

anymail serves ``/anymail/<esp>/inbound/`` (Postmark, Mailgun, Amazon SES, SendGrid,
Mailjet, Brevo, SparkPost, Resend, ...), checks ``ANYMAIL_WEBHOOK_SECRET`` (HTTP basic
auth) and, where the provider signs its posts, the signature. The receiver below answers
fast: it records the raw message (``receive``) and files it from the task queue once the
row is committed; a webhook retry of the same message finds the row and files nothing twice.
"""

import logging

from anymail.signals import inbound
from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from disclosure.inbound import file
from disclosure.inbound.models import InboundMail

log = logging.getLogger(__name__)


def raw_bytes(message) -> bytes:
    """The message as RFC 5322 bytes (providers that post the raw MIME give it back as sent)."""
    try:
        return message.as_bytes()
    except Exception:  # noqa: BLE001 - a header the modern policy cannot write
        from email import policy

        return message.as_bytes(policy=policy.compat32)


@receiver(inbound, dispatch_uid="disclosure.inbound.webhooks")
def inbound_received(sender, event, esp_name, **kwargs):
    if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
        # Without the secret anyone could post mail as anyone: refuse to file it (the check
        # disclosure.W010 says so at start-up).
        log.error("Inbound mail from %s ignored: ANYMAIL_WEBHOOK_SECRET is not set", esp_name)
        return
    row, _ = file.receive(raw_bytes(event.message), arrived_at=event.timestamp or timezone.now(),
                          source=InboundMail.Source.WEBHOOK, source_detail=esp_name)
    if row.state == InboundMail.State.PENDING:
        enqueue_filing(row.pk)


def enqueue_filing(inbound_id: int) -> None:
    """File the row from the queue; if the broker is down the sweep files it a little later."""
    from django_q.tasks import async_task

    try:
        async_task("disclosure.tasks.file_inbound_mail", inbound_id, task_name=f"inbound-{inbound_id}",
                   group="inbound")
    except Exception:  # noqa: BLE001 - the sweep's file_pending picks the row up
        log.exception("Queueing inbound mail %s failed; the sweep will file it", inbound_id)
