"""Reply tags: ``security+<tag>@domain`` in the Reply-To of every email to a reporter.

The tag is a truncated HMAC of the report's primary key under ``SECRET_KEY``: it says
nothing about the report and cannot be guessed or made for another report. It is stored
on the report (an indexed column) the first time an email carries it, so a reply finds its
report with one query, and is checked again in constant time before it is trusted.
"""

import base64
import hmac
import re

from django.conf import settings
from django.utils.crypto import salted_hmac

SALT = "disclosure.inbound.reply-tag"
TAG_LENGTH = 20  # base32 characters: 100 bits
TAG_IN_ADDRESS = re.compile(rf"^[^@+\s]+\+([a-z2-7]{{{TAG_LENGTH}}})@", re.IGNORECASE)


def tag_for(report_pk: int) -> str:
    digest = salted_hmac(SALT, f"report:{report_pk}", secret=settings.SECRET_KEY, algorithm="sha256").digest()
    return base64.b32encode(digest).decode("ascii").lower()[:TAG_LENGTH]


def _team_parts() -> tuple[str, str]:
    local, _, domain = settings.SECURITY_TEAM_EMAIL.rpartition("@")
    return local, domain


def reply_address(report) -> str:
    """The tagged team address for email about ``report`` (the tag is stored on first use)."""
    from disclosure.models import Report

    tag = tag_for(report.pk)
    if report.reply_tag != tag:
        Report.objects.filter(pk=report.pk).update(reply_tag=tag)
        report.reply_tag = tag
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
        report = Report.objects.filter(reply_tag=tag).first()
        if report is not None and hmac.compare_digest(tag_for(report.pk), tag):
            return report
    return None


def reply_to(email) -> str:
    """The Reply-To of an outgoing email: tagged when it goes to a report's reporter, so
    their reply threads back; the plain team address for the team's own email."""
    report = email.report
    if report is not None and report.reporter_email and email.to.lower() == report.reporter_email.lower():
        return reply_address(report)
    return settings.SECURITY_TEAM_EMAIL
