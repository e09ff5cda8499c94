"""Outbound webhooks: the team's chat and ticketing tools hear what happens to reports.

A Lead configures endpoints in the admin (``WebhookEndpoint``): a URL, the events it receives
and a format: **generic** JSON signed per the Standard Webhooks specification (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``: HMAC-SHA256, by the ``standardwebhooks``
library), a **Slack** incoming webhook, or a **Microsoft Teams** workflow webhook.

Delivery is the email outbox's pattern: ``queue_for(event)`` writes one ``WebhookDelivery``
row per subscribed endpoint and event type in the transaction that records the event, with
the payload as it stands then; the task queue delivers it after commit (``deliver``: claimed
by compare-and-set, retried by the sweep with backoff up to ``WEBHOOK_MAX_ATTEMPTS``, failed
ones shown in the admin with a retry action). Nothing is ever sent inside a web request.

Payloads carry the tracking ID, priority, status, deadlines and a staff link; never the
reporter's text or contact details, and the title only when the endpoint's Lead ticked it.

No SSRF from the admin: https only (http with DEBUG), no credentials in the URL, short
timeouts, redirects never followed, and the host is resolved at each attempt and refused if
any of its addresses is loopback, private, link-local or otherwise not public (unless
``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``). The connection goes to the address that was checked
(TLS still verifies the certificate for the host name), so DNS cannot change the answer
between the check and the connection.
"""

import base64
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks import Webhook

log = logging.getLogger(__name__)
SECRET_OVERLAP = timedelta(hours=24)  # after a rotation, messages are signed with both secrets this long


class EventType(models.TextChoices):
    RECEIVED = "report.received", "New report"
    ACKNOWLEDGED = "report.acknowledged", "Acknowledged"
    TRIAGED = "report.triaged", "Triaged as valid (with its priority)"
    P1 = "report.p1", "P1: triaged as, or raised to, P1 (page at once)"
    SLA_WARNING = "sla.warning", "SLA warning (deadline near)"
    SLA_ESCALATION = "sla.escalation", "SLA escalation (deadline missed)"
    BREACH_RECORDED = "breach.recorded", "Personal-data breach recorded"
    BREACH_WARNING = "breach.warning", "Breach notification due soon"
    BREACH_ESCALATION = "breach.escalation", "Breach notification overdue"
    BREACH_NOTIFIED = "breach.notified", "Breach notification recorded (or not required)"
    REPORTER_MESSAGE = "report.reporter_message", "Message from the reporter"
    CLOSED = "report.closed", "Closed or withdrawn"


class Format(models.TextChoices):
    GENERIC = "generic", "Generic JSON, signed (Standard Webhooks)"
    SLACK = "slack", "Slack incoming webhook"
    TEAMS = "teams", "Microsoft Teams workflow webhook"


class WebhookRefused(ValueError):
    """A URL or address the policy does not allow (never retried by itself)."""


# --- The address policy (SSRF guard) ----------------------------------------------------------
def address_allowed(address: str) -> bool:
    """A public unicast address, or anything with ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``."""
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _ip_literal(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: str):
    """The URL's parts when the policy allows it (without resolving its host); else WebhookRefused."""
    parts = urlsplit(url.strip())
    allowed_schemes = ("https", "http") if settings.DEBUG else ("https",)
    if parts.scheme not in allowed_schemes:
        raise WebhookRefused("Use an https:// URL." if not settings.DEBUG else "Use an http(s):// URL.")
    if not parts.hostname:
        raise WebhookRefused("The URL has no host.")
    if parts.username or parts.password:
        raise WebhookRefused("Put no user name or password in the URL; the generic format signs each request.")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise WebhookRefused("The URL's port is not valid.") from None
    host = parts.hostname
    literal = _ip_literal(host)
    if literal is not None and not address_allowed(str(literal)):
        raise WebhookRefused(f"{host} is a loopback, private, link-local or otherwise non-public address: "
                             "webhooks are not sent there (WEBHOOK_ALLOW_PRIVATE_ADDRESSES).")
    if (host == "localhost" or host.endswith(".localhost")) and not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        raise WebhookRefused(f"{host} is this machine: webhooks are not sent there "
                             "(WEBHOOK_ALLOW_PRIVATE_ADDRESSES).")
    return parts


def validate_webhook_url(url: str) -> None:
    try:
        check_url(url)
    except WebhookRefused as refused:
        raise ValidationError(str(refused)) from None


def resolve_checked(host: str, port: int) -> list[str]:
    """Every address of ``host``, each checked; WebhookRefused when one is not allowed (a
    name that also resolves to a private address is refused whole)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConnectionError(f"Cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    refused = [address for address in addresses if not address_allowed(address)]
    if refused:
        raise WebhookRefused(f"{host} resolves to {', '.join(refused)}: a loopback, private, link-local or "
                             "otherwise non-public address; not sent (WEBHOOK_ALLOW_PRIVATE_ADDRESSES).")
    return addresses


# --- Models -------------------------------------------------------------------------------------
def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookEndpoint(models.Model):
    name = models.CharField(max_length=100, help_text="For people: e.g. “#security-alerts on Slack”.")
    url = models.URLField("URL", max_length=1000, validators=[validate_webhook_url], help_text=(
        "https:// only; never a loopback or private address unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES is on. "
        "Redirects are not followed."))
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.GENERIC)
    events = models.JSONField(default=list, blank=True, help_text="The events this endpoint receives.")
    include_title = models.BooleanField(default=False, help_text=(
        "Send the report's title (written by the reporter). Never sent otherwise; the reporter's text and "
        "contact details are never sent."))
    active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, default=new_secret, editable=False, help_text=(
        "The signing secret of the generic format (Standard Webhooks): give it to the receiver."))
    previous_secret = models.CharField(max_length=100, blank=True, editable=False, help_text=(
        "The secret before the last rotation: messages carry its signature too until previous_secret_until, "
        "so the receiver can switch to the new one without refusing anything."))
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "outgoing webhook"
        ordering = ["name", "pk"]

    def __str__(self):
        return self.name

    def renew_secret(self, now) -> None:
        """A new signing secret (rotation). For ``SECRET_OVERLAP`` every message is signed with
        both secrets (Standard Webhooks allows several signatures in one header), so a receiver
        still on the old secret accepts them while it is given the new one."""
        self.previous_secret, self.previous_secret_until = self.secret, now + SECRET_OVERLAP
        self.secret = new_secret()
        self.save(update_fields=["secret", "previous_secret", "previous_secret_until"])

    def signing_secrets(self, now) -> list[str]:
        """The secrets a message sent at ``now`` is signed with: the current one, and the former
        one during the overlap after a rotation."""
        overlap = self.previous_secret and self.previous_secret_until and now < self.previous_secret_until
        return [self.secret, self.previous_secret] if overlap else [self.secret]

    def clean(self):
        unknown = set(self.events or []) - set(EventType.values)
        if unknown or not isinstance(self.events, list):
            raise ValidationError({"events": "Choose events from the list."})


class WebhookDelivery(models.Model):
    """One message to one endpoint about one event: the webhook outbox."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    report = models.ForeignKey("disclosure.Report", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="webhook_deliveries")
    event = models.ForeignKey("disclosure.Event", null=True, blank=True, on_delete=models.CASCADE,
                              related_name="webhook_deliveries")
    event_type = models.CharField(max_length=40, choices=EventType.choices)
    message_id = models.CharField(max_length=60, unique=True, help_text=(
        "The webhook-id header: the same on every attempt, so receivers can drop repeats."))
    payload = models.JSONField(help_text="Written when the event was recorded.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["next_attempt_at"], name="webhook_pending_due",
                                condition=Q(state="pending"))]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event", "event_type"],
                                               name="webhook_once_per_event")]

    def __str__(self):
        return f"{self.event_type} -> {self.endpoint} ({self.state})"

    def claim(self, now) -> bool:
        """Take this attempt (compare-and-set), as ``OutboundEmail.claim`` does; a row whose
        attempts are used up (its last worker died before recording) is marked failed."""
        base = WebhookDelivery.objects.filter(pk=self.pk, state=self.State.PENDING, attempts=self.attempts,
                                              next_attempt_at__lte=now)
        if self.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            reason = (f"Gave up after {self.attempts} attempts: the last one ended without recording its outcome. "
                      f"{self.last_error}").strip()
            if base.update(state=self.State.FAILED, last_error=reason[:2000]):
                self.state, self.last_error = self.State.FAILED, reason[:2000]
            return False
        lease = timedelta(seconds=settings.Q_CLUSTER["timeout"] * 2)
        if base.update(attempts=F("attempts") + 1, next_attempt_at=now + lease):
            self.attempts += 1
            self.next_attempt_at = now + lease
            return True
        return False

    def mark_sent(self, now, status: int):
        self.state, self.sent_at, self.response_status, self.last_error = self.State.SENT, now, status, ""
        self.save(update_fields=["state", "sent_at", "response_status", "last_error"])

    def mark_failed_attempt(self, now, error: str, *, status=None, final=False):
        """Record a failure and schedule the next attempt with backoff, or give up after the last."""
        self.last_error, self.response_status = error[:2000], status
        if final or self.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            self.state = self.State.FAILED
        else:
            self.next_attempt_at = now + timedelta(seconds=settings.WEBHOOK_RETRY_SECONDS * 2 ** (self.attempts - 1))
        self.save(update_fields=["state", "last_error", "response_status", "next_attempt_at"])

    def retry(self, now) -> bool:
        """Put a failed delivery back in the queue (staff action)."""
        return bool(WebhookDelivery.objects.filter(pk=self.pk, state=self.State.FAILED).update(
            state=self.State.PENDING, attempts=0, next_attempt_at=now))


# --- Which endpoints want an event -----------------------------------------------------------------
def _subscriptions() -> list[tuple[int, frozenset, bool]]:
    """``(endpoint id, event types, include_title)`` of the active endpoints: one small
    query, read when an event that some endpoint could want is recorded (never cached, so
    an endpoint added, changed or switched off in any process applies to the next event)."""
    return [(pk, frozenset(events or []), include_title) for pk, events, include_title in
            WebhookEndpoint.objects.filter(active=True).values_list("pk", "events", "include_title")]


# --- Events -> types -> payloads ----------------------------------------------------------------
def event_types(event) -> list[str]:
    from disclosure import incidents
    from disclosure.models import SLA_ESCALATIONS, SLA_WARNINGS, Event

    kind = event.kind
    types = {
        Event.Kind.RECEIVED: [EventType.RECEIVED],
        Event.Kind.ACKNOWLEDGED: [EventType.ACKNOWLEDGED],
        Event.Kind.TRIAGED: [EventType.TRIAGED],
        Event.Kind.REPORTER_MESSAGE: [EventType.REPORTER_MESSAGE],
        Event.Kind.INFO_PROVIDED: [EventType.REPORTER_MESSAGE],
        Event.Kind.CLOSED: [EventType.CLOSED],
        Event.Kind.WITHDRAWN: [EventType.CLOSED],
        Event.Kind.BREACH_WARNING: [EventType.BREACH_WARNING],
        Event.Kind.BREACH_ESCALATION: [EventType.BREACH_ESCALATION],
        Event.Kind.BREACH_NOTIFIED: [EventType.BREACH_NOTIFIED],
    }.get(kind, [])
    if kind in SLA_WARNINGS:
        types = [EventType.SLA_WARNING]
    elif kind in SLA_ESCALATIONS:
        types = [EventType.SLA_ESCALATION]
    elif kind == Event.Kind.BREACH_ASSESSED and event.data.get("personal_data"):
        types = [EventType.BREACH_RECORDED]
    if incidents.is_p1_page(event):
        types = [*types, EventType.P1]
    return [str(t) for t in types]


def _iso(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def build_payload(event, event_type: str, *, include_title: bool) -> dict:
    """The generic payload (``{"type", "timestamp", "data"}``, as Standard Webhooks suggests),
    from an allow-list of the team's fields: no reporter text or contact details."""
    from disclosure import emails, incidents
    from disclosure.models import Event

    report = event.report
    breach = incidents.breach_of(report) if event.kind != Event.Kind.RECEIVED else None
    data = {
        "tracking_id": report.tracking_id,
        "status": report.status,
        "priority": report.priority or None,
        "severity": report.severity or None,
        "deadlines": {
            "acknowledge": _iso(report.ack_due_at), "acknowledge_state": report.ack_milestone,
            "assess": _iso(report.assess_due_at), "assess_state": report.assess_milestone,
            "breach_clients": _iso(breach.client_due_at) if breach else None,
            "breach_clients_state": breach.client_outcome if breach else None,
            "breach_regulator": _iso(breach.regulator_due_at) if breach else None,
            "breach_regulator_state": breach.regulator_outcome if breach else None,
        },
        "staff_url": emails.admin_url(report),
    }
    if include_title:
        data["title"] = report.title
    if event_type in (EventType.SLA_WARNING, EventType.SLA_ESCALATION):
        data["milestone"] = "acknowledge" if event.kind.startswith("ack") else "assess"
        data["due"] = _iso(datetime.fromisoformat(event.data["due"]))
    elif event_type in (EventType.BREACH_WARNING, EventType.BREACH_ESCALATION):
        data.update(clock=event.data["clock"], due=_iso(datetime.fromisoformat(event.data["due"])),
                    hours_left=event.data.get("hours_left"))
    elif event_type == EventType.BREACH_RECORDED:
        data["aware_at"] = _iso(datetime.fromisoformat(event.data["aware_at"]))
    elif event_type == EventType.BREACH_NOTIFIED:
        notified_at = event.data.get("notified_at")
        data.update(clock=event.data["clock"], outcome=event.data["outcome"],
                    due=_iso(datetime.fromisoformat(event.data["due"])),
                    notified_at=_iso(datetime.fromisoformat(notified_at)) if notified_at else None)
    elif event_type in (EventType.TRIAGED, EventType.P1) and event.data.get("from_priority"):
        data["from_priority"] = event.data["from_priority"]
    return {"type": event_type, "timestamp": _iso(event.created_at), "data": data}


def queue_for(event) -> list:
    """Write the deliveries an event calls for (in its transaction) and hand them to the
    queue after commit. Costs no query for an event no webhook type covers, and one small
    query of the active endpoints otherwise."""
    types = event_types(event)
    if not types:
        return []
    wanted = [(pk, t, title) for pk, subscribed, title in _subscriptions() for t in types if t in subscribed]
    if not wanted:
        return []
    rows = [WebhookDelivery(endpoint_id=pk, report=event.report, event=event, event_type=t,
                            message_id=f"msg_{uuid.uuid4().hex}", created_at=event.created_at,
                            next_attempt_at=event.created_at,
                            payload=build_payload(event, t, include_title=title)) for pk, t, title in wanted]
    saved = []
    for row in rows:
        try:
            with transaction.atomic():
                row.save()
            saved.append(row)
        except IntegrityError:  # already queued for this event, or the endpoint was just deleted
            log.info("Webhook %s for event %s not queued (already there or endpoint gone)", row.event_type,
                     event.pk)
    send_after_commit(saved)
    return saved


def send_after_commit(deliveries) -> None:
    """As ``emails.send_after_commit``: in the transaction with the ORM broker, else after commit."""
    from disclosure import emails

    ids = [delivery.pk for delivery in deliveries if delivery is not None]
    if not ids:
        return
    if emails._broker_is_this_database():
        enqueue_delivery(ids)
    else:
        transaction.on_commit(lambda: enqueue_delivery(ids), robust=True)


def enqueue_delivery(ids: list[int]) -> None:
    from django_q.tasks import async_task

    from disclosure import emails

    async_task("disclosure.tasks.deliver_webhooks", ids, task_name=f"deliver-webhooks-{ids[0]}", group="webhook",
               broker=emails._broker())


# --- Formats ------------------------------------------------------------------------------------
def _local(iso: str | None) -> str:
    if not iso:
        return "–"
    return timezone.localtime(datetime.fromisoformat(iso.replace("Z", "+00:00"))).strftime("%a %d %b %H:%M %Z")


CLOCK_WHO = {"client": "clients", "regulator": "the regulator"}


def headline(payload: dict) -> str:
    """One line for people (Slack, Teams), from the stored payload only."""
    data, kind = payload["data"], payload["type"]
    milestone = {"acknowledge": "acknowledgement", "assess": "initial assessment"}.get(data.get("milestone"), "")
    who = CLOCK_WHO.get(data.get("clock"), "")
    text = {
        EventType.RECEIVED: "New report",
        EventType.ACKNOWLEDGED: "Acknowledged",
        EventType.TRIAGED: f"Triaged as valid, {data.get('priority') or 'no priority'}",
        EventType.P1: "P1: critical report, page the on-call team",
        EventType.SLA_WARNING: f"Due soon: {milestone} due {_local(data.get('due'))}",
        EventType.SLA_ESCALATION: f"OVERDUE: {milestone} was due {_local(data.get('due'))}",
        EventType.BREACH_RECORDED: (f"Personal-data breach recorded: clients due "
                                    f"{_local(data['deadlines']['breach_clients'])}, regulator due "
                                    f"{_local(data['deadlines']['breach_regulator'])}"),
        EventType.BREACH_WARNING: f"Breach: notify {who} by {_local(data.get('due'))}",
        EventType.BREACH_ESCALATION: f"BREACH DEADLINE MISSED: notifying {who} was due {_local(data.get('due'))}",
        EventType.BREACH_NOTIFIED: (f"Breach: {who} notified {'LATE' if data.get('outcome') == 'late' else 'on time'}"
                                    if data.get("notified_at") else f"Breach: notifying {who} not required"),
        EventType.REPORTER_MESSAGE: "Message from the reporter",
        EventType.CLOSED: f"Closed ({data.get('status', '').replace('_', ' ')})",
    }.get(kind, kind)
    title = f" {data['title']}" if data.get("title") else ""
    return f"[{data['tracking_id']}]{title}: {text}"


def _facts(payload) -> str:
    data = payload["data"]
    return f"Priority {data.get('priority') or '–'} · status {data.get('status', '').replace('_', ' ')}"


def render(delivery: WebhookDelivery, now) -> tuple[bytes, dict]:
    """The body and headers of one attempt in the endpoint's format."""
    payload, endpoint = delivery.payload, delivery.endpoint
    headers = {"Content-Type": "application/json", "User-Agent": "disclosure-portal-webhooks/1"}
    if endpoint.format == Format.SLACK:
        # Slack's mrkdwn: &, < and > are its control characters.
        line = headline(payload).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        body = {"text": f"{line}\n{_facts(payload)} · <{payload['data']['staff_url']}|Open in the triage queue>"}
    elif endpoint.format == Format.TEAMS:
        body = {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{"type": "TextBlock", "text": headline(payload), "weight": "Bolder", "wrap": True},
                         {"type": "TextBlock", "text": _facts(payload), "wrap": True, "isSubtle": True}],
                "actions": [{"type": "Action.OpenUrl", "title": "Open in the triage queue",
                             "url": payload["data"]["staff_url"]}],
            }}]}
    else:
        body = payload
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if endpoint.format == Format.GENERIC:
        at = datetime.fromtimestamp(int(now.timestamp()), tz=UTC)
        signatures = [Webhook(secret).sign(delivery.message_id, at, text) for secret in endpoint.signing_secrets(now)]
        headers.update({"webhook-id": delivery.message_id, "webhook-timestamp": str(int(at.timestamp())),
                        "webhook-signature": " ".join(signatures)})
    return text.encode(), headers


# --- Delivery -----------------------------------------------------------------------------------
def post(url: str, body: bytes, headers: dict) -> int:
    """POST to ``url`` under the address policy; returns the HTTP status (redirects are not
    followed). Connects to a checked address and verifies TLS for the URL's host name."""
    parts = check_url(url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = urllib3.Timeout(connect=settings.WEBHOOK_TIMEOUT_SECONDS, read=settings.WEBHOOK_TIMEOUT_SECONDS)
    error = None
    for address in resolve_checked(host, port):
        if parts.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address, port, timeout=timeout, retries=False, maxsize=1, cert_reqs="CERT_REQUIRED",
                ca_certs=settings.WEBHOOK_CA_BUNDLE or None, server_hostname=host, assert_hostname=host)
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
        try:
            response = pool.urlopen("POST", target, body=body, headers={**headers, "Host": parts.netloc},
                                    redirect=False, retries=False, assert_same_host=False, preload_content=False)
            status = response.status
            response.close()
            return status
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            error = exc  # try the host's next (checked) address
        finally:
            pool.close()
    raise ConnectionError(f"Could not connect to {host}: {error}")


def deliver(delivery_id: int, now=None) -> bool:
    """Try one delivery; returns whether there was an attempt to make. Safe to call twice or
    from two workers: the attempt is claimed first. Any failure is recorded on the row."""
    now = now or timezone.now()
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != WebhookDelivery.State.PENDING or not delivery.claim(now):
        return False
    try:
        body, headers = render(delivery, now)
        status = post(delivery.endpoint.url, body, headers)
    except WebhookRefused as refused:
        log.warning("Webhook %s refused: %s", delivery.pk, refused)
        delivery.mark_failed_attempt(now, f"Refused: {refused}", final=True)
        return True
    except Exception as exc:  # noqa: BLE001 - network, TLS, DNS, anything: recorded and retried
        log.warning("Webhook %s (attempt %s of %s) failed: %s: %s", delivery.pk, delivery.attempts,
                    settings.WEBHOOK_MAX_ATTEMPTS, type(exc).__name__, exc)
        delivery.mark_failed_attempt(now, f"{type(exc).__name__}: {exc}")
        return True
    if 200 <= status < 300:
        delivery.mark_sent(now, status)
    else:
        note = " (redirects are not followed)" if 300 <= status < 400 else ""
        log.warning("Webhook %s (attempt %s of %s) answered HTTP %s", delivery.pk, delivery.attempts,
                    settings.WEBHOOK_MAX_ATTEMPTS, status)
        delivery.mark_failed_attempt(now, f"The receiver answered HTTP {status}{note}.", status=status)
    return True


def retry_due_deliveries(now, limit: int = 200) -> int:
    """The sweep's pass: attempt every pending delivery that is due, within half the task
    timeout (what is left goes to the next sweep)."""
    due = list(WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
               .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    budget_ends = time.monotonic() + settings.Q_CLUSTER["timeout"] / 2
    tried = 0
    for pk in due:
        if time.monotonic() > budget_ends:
            break
        try:
            tried += deliver(pk, now)
        except Exception:
            log.exception("Delivering webhook %s failed unexpectedly", pk)
    return tried
