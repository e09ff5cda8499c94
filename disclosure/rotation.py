"""How old each credential is, so the team rotates them in time: the team PGP key,
``SECRET_KEY``, and the mail, storage and webhook secrets the portal can see.

The portal never stores a secret to know its age. Each credential is known by a
fingerprint: the team key by its OpenPGP fingerprint (public), a secret by a PBKDF2 digest
of its value (one-way, and slow on purpose, so testing guesses of a weak password against a
copy of the database is costly). A ``CredentialSighting`` row says when a fingerprint was first and last seen
under a name (``SECRET_KEY``, ``SMTP_PASSWORD``, ``webhook:3``, ...): a rotated
credential is a new fingerprint, so a new row whose first sighting is the rotation, and
the former row is marked retired.

``record(now)`` writes what this process sees: the worker calls it when it starts and
hourly (``tasks.housekeeping``), so a restart after a change is seen at once. Readers (the
staff dashboard, /healthz, system check W005) only read. How old a credential is:

- a secret: since its first sighting; a webhook endpoint's first secret (or URL, for the
  Slack and Teams formats, whose URL is the credential) since the endpoint was created;
- the team key: since its OpenPGP creation date, which no sighting can precede (a key
  made a year ago and imported today is a year old); its first sighting when gpg gives no date.

Past ``SECRET_MAX_AGE_DAYS`` (the team key: ``TEAM_KEY_MAX_AGE_DAYS``) a credential is
overdue: a weekly email to the team (``send_reminder``), a system check warning and a
/healthz warning.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q

from disclosure import pgp


class Kind(models.TextChoices):
    TEAM_KEY = "team-key", "Team PGP key"
    SECRET_KEY = "secret-key", "Django SECRET_KEY"
    MAIL = "mail", "Mail credential"
    STORAGE = "storage", "Object storage credential"
    WEBHOOK = "webhook", "Webhook secret"


class CredentialSighting(models.Model):
    """One version of one credential: when the portal first and last saw it. Never the secret."""

    name = models.CharField(max_length=100, help_text="The setting that holds it, or webhook:<id> for an endpoint.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    fingerprint = models.CharField(max_length=64, help_text=(
        "The team key's OpenPGP fingerprint; for a secret, a slow one-way digest of its value "
        "(it tells versions apart and cannot give the secret back)."))
    first_seen = models.DateTimeField(help_text="When this version was first seen: its age counts from here.")
    last_seen = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True, help_text=(
        "When the portal stopped seeing it: replaced by a new version, or no longer configured."))

    class Meta:
        ordering = ["name", "-first_seen"]
        verbose_name = "credential age"
        constraints = [models.UniqueConstraint(fields=["name", "fingerprint"], name="credential_sighting_once")]

    def __str__(self):
        return f"{self.name} (first seen {self.first_seen:%Y-%m-%d})"


# --- What this process can see ----------------------------------------------------------------
FINGERPRINT_SALT = b"disclosure.rotation.credential-fingerprint"
FINGERPRINT_ROUNDS = 100_000  # ~40 ms per value, once per process (remembered)
# ANYMAIL settings that hold a credential: *_TOKEN, *_KEY, *_SECRET, *PASSWORD (e.g.
# POSTMARK_SERVER_TOKEN, MAILGUN_API_KEY, WEBHOOK_SECRET), not *_KEY_ID or URLs.
CREDENTIAL_SETTING = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD)S?$")


@lru_cache(maxsize=64)
def fingerprint(value: str) -> str:
    """A one-way digest of a secret: equal values give equal digests, nothing gives the value back."""
    return hashlib.pbkdf2_hmac("sha256", value.encode(), FINGERPRINT_SALT, FINGERPRINT_ROUNDS).hex()[:32]


@dataclass(frozen=True)
class Credential:
    name: str
    kind: str
    label: str
    fingerprint: str
    created: datetime | None = None  # the team key's OpenPGP creation date
    since: datetime | None = None  # the first version's first sighting, when known (a webhook endpoint's creation)


def _secret(name: str, kind: str, label: str, value) -> list[Credential]:
    return [Credential(name, kind, label, fingerprint(value))] if isinstance(value, str) and value else []


def visible() -> list[Credential]:
    """Every credential this process's configuration holds (the database's webhook
    endpoints included); the team key is left out while gpg cannot be asked."""
    from disclosure.webhooks import Format, WebhookEndpoint

    found = []
    try:
        key = pgp.team_key()
    except pgp.PGPError:
        key = None
    if key is not None:
        found.append(Credential("TEAM_KEY", Kind.TEAM_KEY, "Team PGP key", key.fingerprint, created=key.created))
    if settings.SECRET_KEY != settings.INSECURE_DEV_SECRET_KEY:  # the placeholder is refused in production (E001)
        found += _secret("SECRET_KEY", Kind.SECRET_KEY, "Django's signing key", settings.SECRET_KEY)
    options = settings.MAILERS.get("default", {}).get("OPTIONS", {})
    found += _secret("SMTP_PASSWORD", Kind.MAIL, "SMTP password", options.get("password"))
    found += _secret("EMAIL_HOST_PASSWORD", Kind.MAIL, "SMTP password", getattr(settings, "EMAIL_HOST_PASSWORD", ""))
    for name, value in sorted(settings.ANYMAIL.items()):
        if CREDENTIAL_SETTING.search(name):
            found += _secret(f"ANYMAIL_{name}", Kind.MAIL, "Mail provider credential", value)
    found += _secret("INBOUND_IMAP_PASSWORD", Kind.MAIL, "Mailbox password", settings.INBOUND_IMAP_PASSWORD)
    if settings.S3_BUCKET:
        found += _secret("S3_SECRET_ACCESS_KEY", Kind.STORAGE, "Object storage secret key",
                         settings.S3_SECRET_ACCESS_KEY)
    for endpoint in WebhookEndpoint.objects.filter(active=True).order_by("pk"):
        generic = endpoint.format == Format.GENERIC
        found.append(Credential(
            f"webhook:{endpoint.pk}", Kind.WEBHOOK,
            f"Webhook “{endpoint.name}” {'signing secret' if generic else 'URL'}",
            fingerprint(endpoint.secret if generic else endpoint.url), since=endpoint.created_at))
    return found


def _is(credential: Credential) -> Q:
    return Q(name=credential.name, fingerprint=credential.fingerprint)


def record(now, credentials: list[Credential] | None = None) -> int:
    """Note that the credentials this process sees are in use at ``now``: a new version
    gets its row (its first sighting), every row seen is touched, and the rows no longer
    seen are retired. Idempotent, and safe when several processes or hosts record at once
    (an insert that finds the row already there does nothing). Returns how many it saw."""
    credentials = visible() if credentials is None else credentials
    with transaction.atomic():
        named = set(CredentialSighting.objects.filter(name__in=[c.name for c in credentials])
                    .values_list("name", flat=True))
        rows = [CredentialSighting(name=c.name, kind=c.kind, fingerprint=c.fingerprint, last_seen=now,
                                   first_seen=min(c.since, now) if c.since and c.name not in named else now)
                for c in credentials]
        CredentialSighting.objects.bulk_create(rows, ignore_conflicts=True)
        seen = Q(pk__in=[])
        for credential in credentials:
            seen |= _is(credential)
        CredentialSighting.objects.filter(seen).update(last_seen=now, retired_at=None)
        CredentialSighting.objects.filter(retired_at__isnull=True).exclude(seen).update(retired_at=now)
    return len(credentials)


# --- Ages -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Age:
    credential: Credential
    first_seen: datetime | None  # None: not recorded yet (the worker records hourly and when it starts)
    since: datetime | None  # what the age counts from
    days: int | None

    @property
    def name(self) -> str:
        return self.credential.name

    @property
    def max_days(self) -> int:
        return settings.TEAM_KEY_MAX_AGE_DAYS if self.credential.kind == Kind.TEAM_KEY else settings.SECRET_MAX_AGE_DAYS

    @property
    def overdue(self) -> bool:
        return self.days is not None and self.days > self.max_days

    @property
    def how_to_rotate(self) -> str:
        return HOW_TO_ROTATE[self.credential.kind].format(name=self.name)


HOW_TO_ROTATE = {
    Kind.TEAM_KEY: "manage.py pgp_rotate_team_key NEW.asc, then the settings it prints (README: Rotating keys)",
    Kind.SECRET_KEY: "set a new SECRET_KEY and move the old one into SECRET_KEY_FALLBACKS for a day "
                     "(README: Rotating keys)",
    Kind.MAIL: "create a new credential with the provider, set {name}, restart web and worker, then revoke the old one",
    Kind.STORAGE: "create a new access key for the bucket, set S3_ACCESS_KEY_ID and {name}, restart web and "
                  "worker, then deactivate the old key",
    Kind.WEBHOOK: "admin: Outgoing webhooks → the endpoint → “New signing secret” (give it to the receiver), or a "
                  "new URL from the chat tool",
}


def ages(now, credentials: list[Credential] | None = None) -> list[Age]:
    """How old each credential this process sees is, from what was recorded (read only)."""
    credentials = visible() if credentials is None else credentials
    first = {(row["name"], row["fingerprint"]): row["first_seen"] for row in CredentialSighting.objects.filter(
        name__in=[c.name for c in credentials]).values("name", "fingerprint", "first_seen")}
    result = []
    for credential in credentials:
        seen = first.get((credential.name, credential.fingerprint))
        since = min(filter(None, (credential.created, seen)), default=None)
        result.append(Age(credential, seen, since, (now - since).days if since else None))
    return result


def overdue(now) -> list[Age]:
    return [age for age in ages(now) if age.overdue]


def fallbacks() -> list[datetime | None]:
    """For each ``SECRET_KEY_FALLBACKS`` entry: when it stopped being ``SECRET_KEY`` (None
    when the portal never saw it as one). Remove them once the overlap is over."""
    retired = dict(CredentialSighting.objects.filter(name="SECRET_KEY").values_list("fingerprint", "retired_at"))
    return [retired.get(fingerprint(key)) for key in settings.SECRET_KEY_FALLBACKS]


# --- The weekly reminder --------------------------------------------------------------------------
def send_reminder(now) -> bool:
    """Email the team (at most weekly) while a credential is past its age. Two workers (or
    hosts) at once send it once: the week is claimed on the programme row with a
    compare-and-set, in the transaction that queues the email."""
    from disclosure import emails
    from disclosure.models import Programme

    due = overdue(now)
    if not due:
        return False
    with transaction.atomic():
        if not Programme.claim_week("rotation_alert_sent_at", now):
            return False
        return emails.rotation_due(due, now) is not None
