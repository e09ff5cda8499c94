"""Reply tags: ``security+<tag>@domain`` in the Reply-To of every email to a reporter.

The tag is a truncated HMAC of the report's primary key under ``SECRET_KEY``: it says
nothing about the report and cannot be guessed or made for another report. It is stored
on the report (an indexed column) the first time an email carries it, so a reply finds its
report with one query, and is checked again in constant time before it is trusted.

Across a ``SECRET_KEY`` rotation, as with Django's signing: a tag made under a key in
``SECRET_KEY_FALLBACKS`` is still accepted. The report's next email carries the new key's
tag and keeps the former one (``previous_reply_tag``), so a reply to an email sent before
the rotation still finds its report until the former key leaves the fallbacks.
"""

import base64
import hmac
import re

from django.conf import settings
from django.db.models import Q
from django.utils.crypto import salted_hmac

SALT = "disclosure.inbound.reply-tag"
TAG_LENGTH = 20  # base32 characters: 100 bits
TAG_IN_ADDRESS = re.compile(rf"^[^@+\s]+\+([a-z2-7]{{{TAG_LENGTH}}})@", re.IGNORECASE)


def tag_for(report_pk: int, secret: str | None = None) -> str:
    """The report's tag under ``secret`` (``SECRET_KEY`` by default)."""
    digest = salted_hmac(SALT, f"report:{report_pk}", secret=secret or settings.SECRET_KEY,
                         algorithm="sha256").digest()
    return base64.b32encode(digest).decode("ascii").lower()[:TAG_LENGTH]


def is_valid(tag: str, report_pk: int) -> bool:
    """Whether ``tag`` is the report's tag under ``SECRET_KEY`` or one of its fallbacks."""
    return any([hmac.compare_digest(tag_for(report_pk, secret), tag)  # a list: every key is tried
                for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]])


def _team_parts() -> tuple[str, str]:
    local, _, domain = settings.SECURITY_TEAM_EMAIL.rpartition("@")
    return local, domain


def reply_address(report) -> str:
    """The tagged team address for email about ``report`` (the tag is stored on first use)."""
    from disclosure.models import Report

    tag = tag_for(report.pk)
    if report.reply_tag != tag:
        # A tag from before a SECRET_KEY rotation is kept, so replies to earlier email still
        # find the report while the former key is a fallback.
        previous = report.reply_tag or report.previous_reply_tag
        Report.objects.filter(pk=report.pk).update(reply_tag=tag, previous_reply_tag=previous)
        report.reply_tag, report.previous_reply_tag = tag, previous
    local, domain = _team_parts()
    return f"{local}+{tag}@{domain}"


def report_for_addresses(addresses) -> "object | None":
    """The report whose verified tag is in one of ``addresses`` (To, Cc, Delivered-To)."""
    from disclosure.models import Report

    local, domain = _team_parts()
    for address in addresses:
        match = TAG_IN_ADDRESS.match(address or "")
        if not match or not address.lower().endswith("@" + domain.lower()):
            continue
        tag = match.group(1).lower()
        report = Report.objects.filter(Q(reply_tag=tag) | Q(previous_reply_tag=tag)).first()
        if report is not None and is_valid(tag, report.pk):
            return report
    return None


def reply_to(email) -> str:
    """The Reply-To of an outgoing email: tagged when it goes to a report's reporter, so
    their reply threads back; the plain team address for the team's own email."""
    report = email.report
    if report is not None and report.reporter_email and email.to.lower() == report.reporter_email.lower():
        return reply_address(report)
    return settings.SECURITY_TEAM_EMAIL
