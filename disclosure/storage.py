"""Where the portal's files live, and deleting them reliably.

Every file the portal keeps (attachments, and raw inbound mail while it waits to be filed
or when it is kept as a log) goes through Django's default storage: local disk under
``UPLOAD_DIR`` (the embedded default), or, with ``S3_BUCKET``, object storage through
django-storages' S3 backend (AWS S3 or any S3-compatible store), so every host reads what
any host stored. Objects are sealed to the team key as before, under random names, with no
ACL of their own and never a URL for a browser: downloads stream through the portal's
access-checked views.

Deleting a file is a side effect that can fail (the store may be unreachable), so it is
recorded: ``delete_later`` writes a ``FileDeletion`` row in the transaction that deletes the
row owning the file, tries the deletion once that transaction has committed, and the sweep
retries whatever is left (``delete_due``), with backoff, until the store says it is gone.

``/healthz`` asks the store whether it is reachable (``probe``: a HEAD of the bucket, or a
look at the upload folder), at most once a minute per process, never writing anything.
"""

import logging
import os
from datetime import timedelta
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.checks import Warning, register
from django.core.files.storage import default_storage
from django.db import DatabaseError, models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

log = logging.getLogger(__name__)

# What storing or reading a file can fail with: the local disk (OSError), or the object
# store (botocore: unreachable, refused, throttled).
ERRORS = (OSError, BotoCoreError, ClientError)

RETRY_FIRST_SECONDS = 60
RETRY_MAX_SECONDS = 3600


def uses_object_storage() -> bool:
    return bool(settings.S3_BUCKET) and "S3Storage" in settings.STORAGES["default"]["BACKEND"]


def describe() -> str:
    """Where files go, for people: ``s3://bucket/prefix`` or the upload folder."""
    if uses_object_storage():
        return f"s3://{default_storage.bucket_name}/{default_storage.location}".rstrip("/")
    return str(settings.MEDIA_ROOT)


# --- Deleting ---------------------------------------------------------------------------------
class FileDeletion(models.Model):
    """A stored file whose owner is gone; the row goes once the store has deleted it."""

    name = models.CharField(max_length=300, help_text="The file's name in the storage (a random name).")
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        app_label = "disclosure"
        verbose_name = "file to delete"
        verbose_name_plural = "files to delete"

    def __str__(self):
        return self.name


def delete_later(name: str) -> None:
    """Delete a stored file once the current transaction commits (at once outside one); if
    that fails, the sweep retries it. Rolled back with the transaction, so a file whose
    owner survives stays."""
    if not name:
        return
    row = FileDeletion.objects.create(name=name)
    transaction.on_commit(lambda: delete_one(row.pk))


def discard(name: str) -> None:
    """Delete a file that was written for something that was then not saved (a failed
    submission): at once, and if the store refuses, recorded for the sweep when the
    database can still record it."""
    if not name:
        return
    try:
        default_storage.delete(name)
        return
    except ERRORS as error:
        log.warning("Could not delete %s now (%s: %s); the sweep will retry", name, type(error).__name__, error)
    try:
        FileDeletion.objects.create(name=name, attempts=1, next_attempt_at=timezone.now() +
                                    timedelta(seconds=RETRY_FIRST_SECONDS))
    except DatabaseError:
        log.error("The unsaved file %s could not be deleted nor recorded for deletion; delete it by hand", name)


def delete_one(pk: int, now=None) -> bool:
    """Try one recorded deletion; True when the file is gone (or was already)."""
    row = FileDeletion.objects.filter(pk=pk).first()
    if row is None:
        return True
    try:
        default_storage.delete(row.name)  # a missing file counts as deleted, on disk and in S3
    except ERRORS as error:
        now = now or timezone.now()
        delay = min(RETRY_FIRST_SECONDS * 2 ** row.attempts, RETRY_MAX_SECONDS)
        FileDeletion.objects.filter(pk=pk).update(
            attempts=row.attempts + 1, next_attempt_at=now + timedelta(seconds=delay),
            last_error=f"{type(error).__name__}: {error}"[:2000])
        log.warning("Deleting the stored file %s failed (attempt %d): %s", row.name, row.attempts + 1, error)
        return False
    FileDeletion.objects.filter(pk=pk).delete()
    return True


def delete_due(now, limit: int = 200) -> int:
    """The sweep's part: retry every recorded deletion that is due; returns how many went."""
    due = FileDeletion.objects.filter(next_attempt_at__lte=now).order_by("next_attempt_at")
    return sum(delete_one(pk, now) for pk in due.values_list("pk", flat=True)[:limit])


def pending_deletions() -> int:
    return FileDeletion.objects.count()


def _delete_file_of(sender, instance, field_name):
    name = getattr(instance, field_name).name
    if name:
        delete_later(name)


@receiver(post_delete, sender="disclosure.Attachment")
def delete_attachment_file(sender, instance, **kwargs):
    """A deleted attachment (a purge, withdrawal clean-up, a Lead deleting a report) takes its
    file with it, once the deletion has committed."""
    _delete_file_of(sender, instance, "file")


@receiver(post_delete, sender="disclosure.InboundMail")
def delete_inbound_raw(sender, instance, **kwargs):
    _delete_file_of(sender, instance, "raw")


# --- Health ------------------------------------------------------------------------------------
def probe() -> tuple[str, str | None]:
    """``(state, problem)``: can this process reach where files are kept? Reads only
    (/healthz asks at most once a minute per process)."""
    try:
        if uses_object_storage():
            client = default_storage.connection.meta.client
            client.head_bucket(Bucket=default_storage.bucket_name)
        else:
            root = Path(settings.MEDIA_ROOT)
            if root.exists() and not (root.is_dir() and os.access(root, os.W_OK | os.X_OK)):
                return "unreachable", f"the upload folder {root} is not a writable folder"
            if not root.exists() and not os.access(_existing_parent(root), os.W_OK | os.X_OK):
                return "unreachable", f"the upload folder {root} cannot be created"
    except Exception as error:  # noqa: BLE001 - reported by /healthz, never raised
        return "unreachable", f"file storage ({describe()}) is unreachable: {type(error).__name__}: {error}"
    return "ok", None


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# --- System check ------------------------------------------------------------------------------
# Environment variables that platforms with a throw-away disk per process set.
EPHEMERAL_PLATFORMS = {
    "DYNO": "Heroku (or Dokku)",
    "RENDER": "Render",
    "FLY_APP_NAME": "Fly.io",
    "RAILWAY_ENVIRONMENT": "Railway",
    "CONTAINER": "Scalingo",
    "K_SERVICE": "Google Cloud Run",
}


def ephemeral_platform() -> str:
    """The platform with a throw-away disk this process seems to run on, or ""."""
    return next((label for name, label in EPHEMERAL_PLATFORMS.items() if os.environ.get(name)), "")


@register("disclosure")
def check_ephemeral_disk(app_configs, **kwargs):
    if settings.DEBUG:
        return []
    platform = ephemeral_platform()
    if not platform:
        return []
    found = []
    if not uses_object_storage():
        found.append(Warning(
            f"Files would be stored on local disk ({settings.MEDIA_ROOT}) while this looks like {platform}, where "
            "each process has its own throw-away disk: attachments would be lost at the next restart and could not "
            "be read by another process.",
            hint="Set S3_BUCKET (with S3_ENDPOINT_URL, S3_REGION, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY) to keep "
                 "files in object storage. See the README, 'Running on several hosts'.",
            id="disclosure.W011"))
    if settings.TEAM_KEY_FINGERPRINT and not settings.TEAM_KEY_FILE:
        found.append(Warning(
            f"The team key is read from the keyring at {settings.GNUPG_HOME} on local disk while this looks like "
            f"{platform}: the keyring is lost at the next restart.",
            hint="Set TEAM_KEY_FILE (the armored key, as a platform secret or mounted file) so every process "
                 "imports it at start.",
            id="disclosure.W012"))
    if settings.BACKUP_TARGET == "dir" and settings.BACKUP_HOUR >= 0:
        found.append(Warning(
            f"Daily backups would be written to {settings.BACKUP_DIR} on local disk while this looks like {platform}: "
            "they are lost at the next restart, with the disk they were meant to outlive.",
            hint="Keep them in the bucket (BACKUP_TARGET=bucket with S3_BUCKET set, the default when it is), or "
                 "set BACKUP_HOUR=-1 and run manage.py backup elsewhere. See the README, 'Backups and restore'.",
            id="disclosure.W013"))
    return found
