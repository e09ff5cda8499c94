"""Announcing a new team key: the portal says the former key is superseded.

When ``pgp_rotate_team_key`` brings in a new key it writes a transition statement (the
former and the new fingerprint, the date) and clear-signs it with both keys when both
secrets are in the keyring, so a researcher who trusts the former key can trust the new
one. The statement is a ``KeyTransition`` row (the database: every host serves the same)
and, once the new key is the team key, is served at ``/pgp-key-transition.txt``, linked from
the policy page and from a comment in security.txt (RFC 9116 has no field for it). When a
secret is kept offline, the command prints the statement and how to sign it elsewhere, and
``pgp_rotate_team_key --statement FILE`` stores the signed copy. Either way the policy
page lists the former key as superseded, with its date.
"""

from datetime import date, datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from disclosure import sla
from disclosure.pgp import keyring


class KeyTransition(models.Model):
    """The team key ``old_fingerprint`` superseded by ``new_fingerprint``."""

    old_fingerprint = models.CharField("former key", max_length=40)
    new_fingerprint = models.CharField("new key", max_length=40)
    announced_on = models.DateField(help_text="The date of the change, as the statement gives it.")
    statement = models.TextField(blank=True, help_text=(
        "The transition statement, clear-signed by both keys; empty until it is signed (offline keys: "
        "manage.py pgp_rotate_team_key --statement FILE)."))
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "team key transition"
        constraints = [models.UniqueConstraint(fields=["old_fingerprint", "new_fingerprint"],
                                               name="key_transition_once")]

    def __str__(self):
        return f"{self.old_fingerprint} → {self.new_fingerprint} ({self.announced_on:%Y-%m-%d})"


class StatementRefused(Exception):
    """A statement to store is not signed by both keys of a known transition."""


def _grouped(fingerprint: str) -> str:
    return " ".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))


def statement_text(old: str, new: str, day: date) -> str:
    return (
        f"OpenPGP key transition for the {settings.ORGANISATION_NAME} security team\n"
        f"Date: {day.isoformat()}\n\n"
        f"As of {day.isoformat()}, our team key\n"
        f"  {_grouped(old)}\n"
        f"is superseded by the new key\n"
        f"  {_grouped(new)}\n\n"
        f"Please encrypt to the new key from now on. It is published at {settings.SITE_URL}/pgp-key.txt, in\n"
        f"our security.txt ({settings.SITE_URL}/.well-known/security.txt) and in the Web Key Directory.\n"
        "This statement is signed by both keys: the former key vouches for the new one.\n"
    )


def announce(old: str, new: str, now: datetime) -> tuple[KeyTransition, str | None]:
    """Record that ``new`` supersedes ``old`` from today, with the statement signed by both
    keys when their secrets are here. Returns the row and, when it could not be signed
    here, the unsigned text to sign elsewhere. Running it again for the same keys replaces
    the row (a new date and statement)."""
    day = sla.local_date(now)
    text = statement_text(old, new, day)
    try:
        signed = keyring.clearsign_by_all(text, [old, new])
        if not {old, new} <= keyring.good_signers(signed):  # never publish a statement one key vouches for
            signed = ""
    except keyring.PGPError:
        signed = ""
    transition, _ = KeyTransition.objects.update_or_create(
        old_fingerprint=old, new_fingerprint=new,
        defaults={"announced_on": day, "statement": signed, "created_at": now})
    return transition, None if signed else text


def store_signed(statement: str) -> KeyTransition:
    """Store a statement signed elsewhere: it must carry valid signatures by both keys of a
    recorded transition (or of a former key and the current team key) and name both."""
    today = sla.local_date(timezone.now())
    signers = keyring.good_signers(statement)
    compact = statement.replace(" ", "").upper()
    candidates = list(KeyTransition.objects.filter(old_fingerprint__in=signers, new_fingerprint__in=signers))
    current = keyring.team_fingerprint()
    if not candidates and current in signers:
        candidates = [KeyTransition(old_fingerprint=old, new_fingerprint=current, announced_on=today)
                      for old in keyring.previous_fingerprints() if old in signers]
    for transition in candidates:
        if transition.old_fingerprint in compact and transition.new_fingerprint in compact:
            transition.statement = statement.strip() + "\n"
            transition.save()
            return transition
    if len(signers) < 2:
        raise StatementRefused(f"the statement needs valid signatures by both keys; it has {len(signers)} "
                               f"({', '.join(sorted(signers)) or 'none'} in {settings.GNUPG_HOME}).")
    raise StatementRefused(f"no recorded key transition between the signing keys {', '.join(sorted(signers))}, "
                           "or the statement does not name both fingerprints.")


def published() -> KeyTransition | None:
    """The signed statement for the change to the current team key, if there is one."""
    current = keyring.team_fingerprint()
    if not current:
        return None
    return KeyTransition.objects.filter(new_fingerprint=current).exclude(statement="").first()


def superseded() -> list[dict]:
    """The former team keys, newest change first: each with the date it was superseded (when
    known) and the key that replaced it. From the recorded transitions and
    ``TEAM_KEY_PREVIOUS_FINGERPRINTS``; a transition to a key not yet in use is left out."""
    from disclosure.rotation import CredentialSighting

    current = keyring.team_fingerprint()
    if not current:
        return []
    found: dict[str, dict] = {}
    for row in KeyTransition.objects.exclude(old_fingerprint=current):  # newest first
        found.setdefault(row.old_fingerprint, {"fingerprint": row.old_fingerprint, "grouped": _grouped(
            row.old_fingerprint), "on": row.announced_on, "by": row.new_fingerprint})
    retired = dict(CredentialSighting.objects.filter(name="TEAM_KEY").values_list("fingerprint", "retired_at"))
    for old in keyring.previous_fingerprints():
        if old not in found:
            on = retired.get(old)
            found[old] = {"fingerprint": old, "grouped": _grouped(old), "on": on.date() if on else None, "by": ""}
    return sorted(found.values(), key=lambda key: key["on"] or date.min, reverse=True)
