"""System checks: a misconfiguration fails at start-up instead of at 3 a.m.

The production-safety checks are deployment checks: the release step runs ``manage.py
check --deploy`` and ``config/wsgi.py`` runs them before serving, so gunicorn refuses to
start on an unsafe configuration, while development commands (makemigrations, tests) work
with nothing set. The other checks run with every command."""

import shutil
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import ERROR, Error, Warning, register, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import SystemCheckError
from django.db import DatabaseError, transaction
from django.http.request import validate_host
from django.utils import timezone

from disclosure import pgp
from disclosure.pgp.mime import MIME_CAPABLE_BACKENDS

UNSAFE_MAILERS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


@register("disclosure", deploy=True)
def check_production_settings(app_configs, **kwargs):
    """Deployment checks: ``manage.py check --deploy`` (the Procfile's release step) and the
    WSGI application itself refuse an unsafe configuration while DEBUG is off."""
    errors = []
    if settings.DEBUG:
        return errors
    key = settings.SECRET_KEY
    if key == settings.INSECURE_DEV_SECRET_KEY or len(key) < 50 or len(set(key)) < 5:
        errors.append(Error(
            "SECRET_KEY is missing or too weak while DEBUG is off.",
            hint="Set SECRET_KEY (or SECRET_KEY_FILE) to at least 50 random characters, e.g. "
                 "python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
            id="disclosure.E001"))
    site = urlsplit(settings.SITE_URL)
    if site.scheme != "https" or not site.hostname:
        errors.append(Error(
            f"SITE_URL must be the public https:// address of the portal, not {settings.SITE_URL!r}.",
            hint="Every link in emails and security.txt is built from it.", id="disclosure.E002"))
    elif not validate_host(site.hostname, settings.ALLOWED_HOSTS):
        errors.append(Error(
            f"The host of SITE_URL ({site.hostname}) is not in ALLOWED_HOSTS.",
            hint="Leave ALLOWED_HOSTS unset to derive it from SITE_URL, or add the host.", id="disclosure.E003"))
    if not settings.STAFF_2FA_REQUIRED:
        errors.append(Error("STAFF_2FA_REQUIRED is off while DEBUG is off: staff could use the admin with a "
                            "password alone.", hint="Remove STAFF_2FA_REQUIRED=false.", id="disclosure.E007"))
    backend = settings.MAILERS.get("default", {}).get("BACKEND", "")
    if backend in UNSAFE_MAILERS:
        # Django's own mail.E001 says the same in terms of MAILERS; settings silence it so
        # this one, which names the setting to change, is the only report.
        mailer = "MAILER is not set (or is 'console')" if settings.MAILER == "console" else \
            f"MAILER is {settings.MAILER!r}"
        errors.append(Error(
            f"No real mailer is configured: {mailer}, so reporters would never get their email.",
            hint="Set MAILER=smtp (with SMTP_HOST, SMTP_USER and SMTP_PASSWORD) or MAILER=<provider> for a "
                 "django-anymail provider, e.g. MAILER=postmark with ANYMAIL_POSTMARK_SERVER_TOKEN.",
            id="disclosure.E004"))
    return errors


@register("disclosure")
def check_queue(app_configs, **kwargs):
    errors = []
    conf = settings.Q_CLUSTER
    if conf.get("retry", 0) <= conf.get("timeout", 0):
        errors.append(Error("Q_CLUSTER['retry'] must be larger than Q_CLUSTER['timeout'], or tasks run twice.",
                            id="disclosure.E005"))
    if not conf.get("max_attempts"):
        errors.append(Error("Q_CLUSTER['max_attempts'] must be finite: django-q2 retries forever otherwise.",
                            id="disclosure.E006"))
    return errors


@register("disclosure")
def check_gpg(app_configs, **kwargs):
    if shutil.which(settings.GPG_BINARY) is None:
        return [Warning(f"The gpg binary ({settings.GPG_BINARY}) was not found; PGP features will not work.",
                        hint="Install GnuPG 2.2 or later (apt-get install gnupg).", id="disclosure.W001")]
    return []


@register("disclosure")
def check_team_key(app_configs, **kwargs):
    if shutil.which(settings.GPG_BINARY) is None:
        return []
    if settings.TEAM_KEY_FILE:
        try:
            pgp.import_team_key_file()
        except pgp.PGPError as error:
            return [Error(f"The team key from TEAM_KEY_FILE cannot be used: {error}", id="disclosure.E010")]
    if not pgp.team_fingerprint():
        return [Warning("No team PGP key is configured: security.txt is unsigned and reports cannot be encrypted.",
                        hint="Import your key with manage.py pgp_import_team_key and set TEAM_KEY_FINGERPRINT.",
                        id="disclosure.W002")]
    try:
        key = pgp.team_key()
    except pgp.PGPError as error:
        return [Error(f"The team keyring could not be read: {error}", id="disclosure.E008")]
    if key is None:
        return [Error(f"TEAM_KEY_FINGERPRINT {pgp.team_fingerprint()} is not in the keyring at {settings.GNUPG_HOME}.",
                      hint="Import it with manage.py pgp_import_team_key, or correct the fingerprint.",
                      id="disclosure.E008")]
    if key.expires_soon(timezone.now()):
        return [Error(f"The team key {key.fingerprint} expires on {key.expires:%Y-%m-%d}.",
                      hint="Extend its expiry (gpg --quick-set-expire) and import it again.", id="disclosure.E009")]
    previous = pgp.previous_fingerprints()
    secrets_here = set(pgp.secret_fingerprints()) if previous else set()
    missing = [fpr for fpr in previous if fpr not in secrets_here]
    if missing and key.can_decrypt:
        return [Warning(f"The former team key(s) {', '.join(missing)} in TEAM_KEY_PREVIOUS_FINGERPRINTS have no "
                        f"secret key in {settings.GNUPG_HOME}: what was sealed to them cannot be read here.",
                        hint="Import them again, or run manage.py pgp_rotate_team_key --reseal while they are "
                             "still here before removing them.", id="disclosure.W030")]
    if not key.can_decrypt:
        signing = ("security.txt and email are signed here, but" if key.can_sign
                   else "Only the public team key is on the server: security.txt and email are not signed, and")
        return [Warning(f"Offline-key mode: {signing} encrypted reports are decrypted on staff machines.",
                        id="disclosure.W003")]
    return []


@register("disclosure")
def check_backups(app_configs, **kwargs):
    errors = []
    if settings.BACKUP_RETENTION_DAYS > 90:
        errors.append(Error(
            f"BACKUP_RETENTION_DAYS is {settings.BACKUP_RETENTION_DAYS}: data purged from the portal must leave its "
            "backups within 90 days.", hint="Set BACKUP_RETENTION_DAYS to 90 or less (default 30).",
            id="disclosure.E030"))
    if settings.BACKUP_HOUR > 23:
        errors.append(Error(f"BACKUP_HOUR must be an hour from 0 to 23, or -1 for no schedule, not "
                            f"{settings.BACKUP_HOUR}.", id="disclosure.E031"))
    fingerprint = settings.BACKUP_KEY_FINGERPRINT
    if fingerprint and shutil.which(settings.GPG_BINARY) is not None:
        try:
            found = any(key["fingerprint"] == fingerprint for key in pgp.team_gpg().list_keys(keys=[fingerprint]))
        except pgp.PGPError:
            found = True  # reported by check_team_key
        if not found:
            errors.append(Error(
                f"BACKUP_KEY_FINGERPRINT {fingerprint} is not in the keyring at {settings.GNUPG_HOME}: backups "
                "would fail.", hint="Import its public key with manage.py pgp_import_team_key.",
                id="disclosure.E032"))
    return errors


@register("disclosure")
def check_backup_target(app_configs, **kwargs):
    """Backups into the bucket need object storage, and a folder of their own there."""
    from disclosure import storage

    target = settings.BACKUP_TARGET
    if target not in ("bucket", "dir"):
        return [Error(f"BACKUP_TARGET must be bucket or dir, not {target!r}.", id="disclosure.E033")]
    if target == "dir":
        return []
    if not storage.uses_object_storage():
        return [Error("BACKUP_TARGET is bucket, but files are not kept in a bucket (S3_BUCKET is not set): backups "
                      "would fail.", hint="Set S3_BUCKET, or BACKUP_TARGET=dir to write them into BACKUP_DIR.",
                      id="disclosure.E033")]
    prefix, files = settings.BACKUP_S3_PREFIX, settings.S3_PREFIX
    if not prefix or prefix == files or files.startswith(prefix + "/"):
        return [Error(f"BACKUP_S3_PREFIX ({prefix!r}) must be a folder of its own in the bucket: not empty, and "
                      f"neither S3_PREFIX ({files!r}) nor a folder holding it.",
                      hint="Leave it unset (backups), or name another folder, e.g. disclosure-backups.",
                      id="disclosure.E034")]
    return []


@register("disclosure")
def check_pgp_mailer(app_configs, **kwargs):
    backend = settings.MAILERS.get("default", {}).get("BACKEND", "")
    if settings.TEAM_KEY_FINGERPRINT and backend not in MIME_CAPABLE_BACKENDS:
        return [Warning(
            f"The mailer {backend} sends through an HTTP API that cannot carry PGP/MIME: email is sent unsigned, "
            "and email to reporters who gave a key is not sent at all (never in plaintext).",
            hint="Use your provider's SMTP relay (MAILER=smtp) or MAILER=amazon_ses.", id="disclosure.W004")]
    return []


@register("disclosure")
def check_rotation_age(app_configs, **kwargs):
    """Credentials past their rotation age (disclosure/rotation.py). Read from the database:
    nothing to say while it is unreachable or not migrated yet."""
    from disclosure import rotation

    try:
        with transaction.atomic():
            due = rotation.overdue(timezone.now())
    except DatabaseError:
        return []
    return [Warning(f"{age.credential.label} ({age.name}) is {age.days} days old: past the rotation age of "
                    f"{age.max_days} days.", hint=f"Rotate it: {age.how_to_rotate}.", id="disclosure.W005")
            for age in due]


def refuse_unsafe_deployment() -> None:
    """Raise ``SystemCheckError`` when a deployment check reports an error (used by WSGI).

    Development (DEBUG on, e.g. ``runserver``) is exempt: its console mailer and plain http
    are the point there."""
    if settings.DEBUG:
        return
    errors = [m for m in run_checks(include_deployment_checks=True) if m.level >= ERROR and not m.is_silenced()]
    if errors:
        raise SystemCheckError("The portal refuses to start on an unsafe configuration:\n" +
                               "\n".join(f"{m.id}: {m.msg} {m.hint or ''}" for m in errors))


def prepare_team_key() -> None:
    """At start (the WSGI application, the queue worker): import the team key from
    ``TEAM_KEY_FILE`` into ``GNUPG_HOME`` (see ``pgp.import_team_key_file``), or refuse to
    start with the reason. Every other process imports it on its first use of the keyring."""
    if not settings.TEAM_KEY_FILE:
        return
    try:
        pgp.import_team_key_file()
    except pgp.PGPError as error:
        raise ImproperlyConfigured(f"The portal refuses to start: {error}") from None
