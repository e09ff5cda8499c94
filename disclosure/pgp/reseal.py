"""Re-sealing after a team key rotation: everything stored encrypted to a former team key
only is decrypted and encrypted again to the current one.

Each item is handled on its own and is idempotent: an item already encrypted to the
current key is skipped, and the new value is written only where the row still holds the
value that was read (compare-and-set), so two runs at once, or a run killed half way and
started again, leave every item sealed once to the current key. A file is written under a
new name before its row points at it; the old file is deleted after the row changed (a
run killed in between leaves at most one orphaned copy, sealed to a team key).

Covered: a report's sealed fields (``Report.sealed_content``) and any of its text fields the
researcher encrypted themselves, messages, attachments and the raw copies of inbound email.
"""

import logging

from django.core.files.base import ContentFile
from django.db.models import Q

from disclosure.pgp import keyring as pgp
from disclosure.pgp.sealing import SEALED_REPORT_FIELDS

log = logging.getLogger(__name__)


def _needs_resealing(data) -> bool:
    """Encrypted, and not to the current team key (a hidden recipient counts as not)."""
    return not (pgp.recipient_key_ids(data) & pgp.team_encryption_key_ids())


def _resealed_text(text: str) -> str:
    return pgp.encrypt_to_team(pgp.decrypt(text, max_output=len(SEALED_REPORT_FIELDS) * pgp.TEXT_MAX_OUTPUT))


def _resealed_file(data: bytes) -> bytes:
    """A file a researcher sent ASCII-armored stays armored; ours stay binary."""
    plain = pgp.decrypt(data)
    if pgp.is_armored_message_file(data):
        return pgp.encrypt_to_team(plain).encode("ascii")
    return pgp.encrypt_to_team(plain, armor=False)


def reseal_report(pk: int) -> int:
    """Re-seal one report's encrypted text; returns how many values changed."""
    from disclosure.models import Report

    fields = ("sealed_content", *SEALED_REPORT_FIELDS)
    values = Report.objects.filter(pk=pk).values(*fields).first() or {}
    changed = 0
    for name, value in values.items():
        if value and pgp.looks_encrypted(value) and _needs_resealing(value):
            changed += Report.objects.filter(pk=pk, **{name: value}).update(**{name: _resealed_text(value)})
    return changed


def reseal_message(pk: int) -> int:
    from disclosure.models import Message

    body = Message.objects.filter(pk=pk).values_list("body", flat=True).first()
    if not body or not pgp.looks_encrypted(body) or not _needs_resealing(body):
        return 0
    return Message.objects.filter(pk=pk, body=body).update(body=_resealed_text(body))


def _reseal_file(model, pk: int, field: str, flag: str) -> int:
    row = model.objects.filter(pk=pk, **{flag: True}).first()
    if row is None or not getattr(row, field):
        return 0
    stored = getattr(row, field)
    old_name = stored.name
    with stored.open("rb") as handle:
        data = handle.read()
    if not _needs_resealing(data):
        return 0
    new_name = stored.storage.save(old_name, ContentFile(_resealed_file(data)))  # a new, free name
    if model.objects.filter(pk=pk, **{field: old_name}).update(**{field: new_name}):
        stored.storage.delete(old_name)
        return 1
    stored.storage.delete(new_name)  # another run got there first
    return 0


def reseal_attachment(pk: int) -> int:
    from disclosure.models import Attachment

    return _reseal_file(Attachment, pk, "file", "encrypted")


def reseal_inbound_mail(pk: int) -> int:
    from disclosure.inbound.models import InboundMail

    return _reseal_file(InboundMail, pk, "raw", "raw_encrypted")


def candidates() -> list[tuple[str, int]]:
    """Every stored item that may be encrypted, as (kind, pk)."""
    from disclosure.inbound.models import InboundMail
    from disclosure.models import Attachment, Message, Report

    armored = pgp.BEGIN_MESSAGE
    text = Q(sealed_content__contains=armored)
    for name in SEALED_REPORT_FIELDS:
        text |= Q(**{f"{name}__contains": armored})
    items = [("report", pk) for pk in Report.objects.filter(text).order_by("pk").values_list("pk", flat=True)]
    items += [("message", pk) for pk in Message.objects.filter(body__contains=armored)
              .order_by("pk").values_list("pk", flat=True)]
    items += [("attachment", pk) for pk in Attachment.objects.filter(encrypted=True)
              .order_by("pk").values_list("pk", flat=True)]
    items += [("inbound_mail", pk) for pk in InboundMail.objects.filter(raw_encrypted=True).exclude(raw="")
              .order_by("pk").values_list("pk", flat=True)]
    return items


UNITS = {"report": reseal_report, "message": reseal_message, "attachment": reseal_attachment,
         "inbound_mail": reseal_inbound_mail}


def reseal_all(limit: int | None = None) -> dict:
    """Re-seal up to ``limit`` items that need it (all when None). Returns counts:
    ``resealed`` (values changed), ``checked`` (items looked at) and ``failed`` (items
    that could not be decrypted here: logged, left as they are)."""
    result = {"checked": 0, "resealed": 0, "failed": 0}
    for kind, pk in candidates():
        if limit is not None and result["resealed"] >= limit:
            break
        result["checked"] += 1
        try:
            result["resealed"] += UNITS[kind](pk)
        except pgp.PGPError as error:
            result["failed"] += 1
            log.warning("Re-sealing %s %s failed: %s", kind, pk, error)
    return result
