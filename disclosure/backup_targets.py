"""Where backup archives are kept (``BACKUP_TARGET``): ``BACKUP_DIR`` on local disk, or the
object-storage bucket of ``S3_BUCKET`` under ``BACKUP_S3_PREFIX``.

An archive for the bucket is written as ``backup.create_backup`` writes any archive (a tar
stream encrypted by gpg as it is written, never in clear) into a private temporary folder,
uploaded, compared with what the bucket then holds, and deleted; the folder goes whether the
upload worked or not. An object appears in the bucket only once its upload is complete (S3
PUT and multipart uploads are atomic), so a failed upload leaves no archive to count; the
parts of a multipart upload a killed backup left unfinished are aborted by the retention
pass a day later.

Archives are named ``portal-backup-<UTC time>.tar.gpg`` in both places; their ``location``
(a path, or ``s3://<bucket>/<key>``) is what ``backup`` prints, ``backup --list`` lists and
``restore`` takes. The archives' folder is never counted among the portal's files
(``backup.archive_folder_in``), even when it lies inside ``S3_PREFIX``.
"""

import logging
import posixpath
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.storage import storages

from disclosure import backup, pgp
from disclosure.backup import ARCHIVE_NAME, BackupError

log = logging.getLogger(__name__)

# What talking to the bucket can fail with (boto3's S3UploadFailedError is a Boto3Error).
S3_ERRORS = (BotoCoreError, ClientError, Boto3Error)
# Unfinished multipart uploads older than this are a killed backup's, not a running one's.
UNFINISHED_UPLOAD_DAYS = 1


@dataclass(frozen=True)
class Archive:
    made_at: datetime  # from its name
    name: str  # portal-backup-<UTC time>.tar.gpg
    location: str  # a path, or s3://<bucket>/<key>: what ``restore`` takes
    size: int


def in_bucket() -> bool:
    return settings.BACKUP_TARGET == "bucket"


def _storage():
    storage = storages["default"]
    if not hasattr(storage, "bucket_name"):
        raise BackupError("BACKUP_TARGET is bucket, but files are not kept in a bucket: set S3_BUCKET, or "
                          "BACKUP_TARGET=dir")
    return storage


def _client():
    return _storage().connection.meta.client


def _bucket() -> str:
    return _storage().bucket_name


def _key(name: str) -> str:
    return f"{settings.BACKUP_S3_PREFIX}/{name}"


def _url(key: str) -> str:
    return f"s3://{_bucket()}/{key}"


def describe() -> str:
    """Where backups go, for people."""
    if in_bucket():
        return f"s3://{settings.S3_BUCKET}/{settings.BACKUP_S3_PREFIX}/"
    return str(settings.BACKUP_DIR)


# --- Listing ----------------------------------------------------------------------------------
def archives() -> list[Archive]:
    """The complete archives where backups go, oldest first."""
    if not in_bucket():
        found = []
        for made_at, path in backup.archives():
            try:
                found.append(Archive(made_at, path.name, str(path), path.stat().st_size))
            except FileNotFoundError:  # deleted meanwhile
                continue
        return found
    folder = settings.BACKUP_S3_PREFIX + "/"
    found = []
    try:
        for page in _client().get_paginator("list_objects_v2").paginate(Bucket=_bucket(), Prefix=folder):
            for item in page.get("Contents", []):
                name = item["Key"][len(folder):]
                match = ARCHIVE_NAME.match(name)
                if match:
                    made_at = datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                    found.append(Archive(made_at, name, _url(item["Key"]), item["Size"]))
    except S3_ERRORS as error:
        raise BackupError(f"the backups in {describe()} cannot be listed: {error}") from None
    return sorted(found, key=lambda archive: archive.made_at)


def newest_backup_at() -> datetime | None:
    """When the newest complete archive was made (from its name), or None."""
    found = archives()
    return found[-1].made_at if found else None


def watched(newest: datetime | None) -> bool:
    """Whether /healthz and the dashboard report the backups' age: a team key is configured
    and backups are scheduled (``BACKUP_HOUR``) or have been made (``newest``: from cron)."""
    return bool(pgp.team_fingerprint()) and (settings.BACKUP_HOUR >= 0 or newest is not None)


# --- Writing and retention ------------------------------------------------------------------
def make_backup(now: datetime) -> str:
    """One archive where ``BACKUP_TARGET`` says; returns its location."""
    if not in_bucket():
        return str(backup.create_backup(now))
    _storage()  # refuse before the work when there is no bucket
    with tempfile.TemporaryDirectory(prefix="disclosure-backup-upload-") as folder:  # 0700, removed after
        path = backup.create_backup(now, Path(folder))
        return _upload(path)


def _upload(path: Path) -> str:
    key = _key(path.name)
    size = path.stat().st_size
    client, bucket = _client(), _bucket()
    try:
        client.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": "application/octet-stream"})
        stored = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
    except S3_ERRORS as error:
        raise BackupError(f"uploading the archive to {_url(key)} failed: {error}") from None
    if stored != size:
        client.delete_object(Bucket=bucket, Key=key)
        raise BackupError(f"the bucket holds {stored} bytes of {_url(key)}, not {size}: deleted it")
    log.info("Backup uploaded: %s (%d bytes)", _url(key), size)
    return _url(key)


def delete_old(now: datetime) -> int:
    """Delete the archives made more than ``BACKUP_RETENTION_DAYS`` ago where backups go
    (and what killed backups left: ``.partial`` files, unfinished uploads, after a day);
    returns how many archives were deleted."""
    if not in_bucket():
        return backup.delete_old_archives(now)
    cutoff = now - timedelta(days=settings.BACKUP_RETENTION_DAYS)
    client, bucket = _client(), _bucket()
    deleted = 0
    try:
        for archive in archives():
            if archive.made_at < cutoff:
                client.delete_object(Bucket=bucket, Key=_key(archive.name))
                deleted += 1
        unfinished = client.list_multipart_uploads(Bucket=bucket, Prefix=settings.BACKUP_S3_PREFIX + "/")
        for upload in unfinished.get("Uploads", []):
            if upload["Initiated"] < now - timedelta(days=UNFINISHED_UPLOAD_DAYS):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    except S3_ERRORS as error:
        raise BackupError(f"deleting old backups in {describe()} failed: {error}") from None
    return deleted


# --- Reading one back -----------------------------------------------------------------------
@contextmanager
def fetched(archive: str):
    """A local path to the archive ``archive`` names: a file; ``s3://<bucket>/<key>`` in this
    portal's bucket; or an archive's name (``portal-backup-...tar.gpg``) where backups go.
    An archive from the bucket is downloaded (encrypted, as stored) into a private temporary
    folder, deleted when the block ends; errors name the archive, not that copy."""
    path = Path(archive)
    if path.is_file():
        yield path
        return
    if archive.startswith("s3://"):
        bucket, _, key = archive.removeprefix("s3://").partition("/")
        if not hasattr(storages["default"], "bucket_name"):
            raise BackupError(f"{archive}: S3_BUCKET is not configured here, so the bucket cannot be read")
        if bucket != _bucket():
            raise BackupError(f"{archive} is not in this portal's bucket ({_bucket()})")
    elif ARCHIVE_NAME.match(archive) and in_bucket():
        key = _key(archive)
    elif ARCHIVE_NAME.match(archive) and (Path(settings.BACKUP_DIR) / archive).is_file():
        yield Path(settings.BACKUP_DIR) / archive
        return
    else:
        raise BackupError(f"{archive}: no such file")
    name = posixpath.basename(key)
    if not name:
        raise BackupError(f"{archive} names a folder, not an archive")
    with tempfile.TemporaryDirectory(prefix="disclosure-restore-") as folder:  # 0700
        local = Path(folder) / name
        try:
            _client().download_file(_bucket(), key, str(local))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise BackupError(f"{_url(key)}: no such archive in the bucket") from None
            raise BackupError(f"{_url(key)} could not be downloaded: {error}") from None
        except S3_ERRORS as error:
            raise BackupError(f"{_url(key)} could not be downloaded: {error}") from None
        try:
            yield local
        except BackupError as error:
            raise BackupError(str(error).replace(str(local), _url(key))) from None
