"""What a parsed message is: ignored (and why), a bounce of one of our emails, a reply on
a report, or a new report. Pure decisions over the message and a few indexed lookups."""

import email.utils
import re
from dataclasses import dataclass

from django.conf import settings

from disclosure.inbound import tags
from disclosure.inbound.models import InboundMail
from disclosure.inbound.parse import ParsedMail

Outcome = InboundMail.Outcome
SERVER_SENDERS = {"mailer-daemon", "postmaster"}
AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
THREAD_ID = re.compile(r"^<report\.[^.>]+\.(\d+)@")
OUR_MESSAGE_ID = re.compile(r"<[0-9a-f]{32}\.[^<>\s]+>")


@dataclass
class Decision:
    outcome: str
    reason: str = ""
    report: object = None
    bounced: object = None

    @property
    def ignored(self) -> bool:
        return self.outcome in (Outcome.AUTO_REPLY, Outcome.LOOP, Outcome.MAILER_DAEMON, Outcome.CLOSED)


def _address(value: str) -> str:
    return email.utils.parseaddr(value)[1].lower()


def classify(mail: ParsedMail) -> Decision:
    from disclosure.models import OutboundEmail

    sender = mail.sender.lower()
    local = sender.split("@", 1)[0]
    ours = {_address(settings.DEFAULT_FROM_EMAIL), _address(settings.SECURITY_TEAM_EMAIL)}
    if mail.message_id and OutboundEmail.objects.filter(message_id=mail.message_id).exists():
        return Decision(Outcome.LOOP, "This is an email the portal sent (its Message-ID is in the outbox).")
    if sender and sender in ours:
        return Decision(Outcome.LOOP, f"Sent from the portal's own address ({sender}).")

    if mail.bounce is not None or local in SERVER_SENDERS:
        bounced = _bounced_email(mail)
        if bounced is not None:
            return Decision(Outcome.BOUNCE, mail.bounce.detail if mail.bounce else "", report=bounced.report,
                            bounced=bounced)
        return Decision(Outcome.MAILER_DAEMON, f"From a mail server ({sender or 'no sender'}); it names none of the "
                                               "emails the portal sent.")

    auto = mail.header("auto-submitted").strip().lower()
    if auto and not auto.startswith("no"):
        return Decision(Outcome.AUTO_REPLY, f"Auto-Submitted: {auto}")
    for name in ("x-autoreply", "x-autorespond"):
        if mail.header(name):
            return Decision(Outcome.AUTO_REPLY, f"{name}: {mail.header(name)}")
    precedence = mail.header("precedence").strip().lower()
    if precedence in AUTO_PRECEDENCE:
        return Decision(Outcome.AUTO_REPLY, f"Precedence: {precedence}")

    report = _replied_report(mail)
    if report is not None:
        if not report.is_open:
            return Decision(Outcome.CLOSED, f"A reply to {report.tracking_id}, which is closed.", report=report)
        other = not report.reporter_email or sender != report.reporter_email.lower()
        return Decision(Outcome.OTHER_SENDER if other else Outcome.REPLY, report=report)
    return Decision(Outcome.REPORT)


def _bounced_email(mail: ParsedMail):
    """The outbox row a bounce refers to: named by the DSN's returned headers, or, for a
    bounce that is not a DSN, by one of our Message-IDs quoted in its text."""
    from disclosure.models import OutboundEmail

    candidates = [mail.bounce.original_message_id] if mail.bounce else []
    candidates += [match.lower() for match in OUR_MESSAGE_ID.findall(mail.text)][:20]
    for message_id in candidates:
        found = OutboundEmail.objects.select_related("report").filter(message_id=message_id).first()
        if found is not None:
            return found
    return None


def _replied_report(mail: ParsedMail):
    """The report a reply belongs to: a verified reply tag in its recipients, or one of our
    Message-IDs (an email we sent, or a report's thread) in In-Reply-To/References."""
    from disclosure.emails import thread_id
    from disclosure.models import OutboundEmail, Report

    report = tags.report_for_addresses(mail.recipients)
    if report is not None:
        return report
    ids = list(dict.fromkeys(mail.in_reply_to + mail.references))[:50]
    if not ids:
        return None
    sent = OutboundEmail.objects.filter(message_id__in=ids, report__isnull=False).select_related("report").first()
    if sent is not None:
        return sent.report
    for message_id in ids:
        match = THREAD_ID.match(message_id)
        if match:
            report = Report.objects.filter(pk=int(match.group(1))).first()
            if report is not None and thread_id(report).lower() == message_id:
                return report
    return None
