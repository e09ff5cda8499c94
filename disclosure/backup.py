"""Backups and restore: one archive holding everything needed to rebuild the portal.

The archive is a tar stream, encrypted with gpg as it is written (``pgp.encrypting_to_file``),
so nothing of it rests in clear on disk. Its members, in order:

- ``database.sqlite3`` (SQLite's online backup API into memory, serialised) or
  ``database.pgdump`` (``pg_dump --format=custom`` of a snapshot; pg_dump writes to a file
  in a private temporary folder, mode 0700, removed when the backup ends);
- ``files/<name>`` for every file in the default storage, read through Django's storage API
  (local folder or object storage alike), never earlier archives kept beside them;
- ``manifest.json`` last: portal and Django versions, the migrations applied, row counts per
  table, and the size and SHA-256 of every other member.

Restoring reads the archive twice: a first pass decrypts it to its end (gpg checks its
integrity only there) and compares every member with the manifest, before anything is
touched; the second pass restores. ``verify`` restores into a scratch database and storage
and compares counts and checksums. Where archives are kept (``BACKUP_DIR`` or the bucket) is
``backup_targets.py``.
"""

import hashlib
import io
import json
import logging
import os
import posixpath
import re
import secrets
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django
from django.apps import apps
from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage, storages
from django.db import connection, transaction

from disclosure import pgp

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
FILES_PREFIX = "files/"
ARCHIVE_NAME = re.compile(r"^portal-backup-(\d{8}T\d{6}Z)\.tar\.gpg$")
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore could not be done; the message says why, for the operator."""


# --- What is backed up ----------------------------------------------------------------------
def portal_version() -> str:
    try:
        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as handle:
            return tomllib.load(handle)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def model_tables() -> list[str]:
    """Every table the portal's models (and the apps it runs) keep rows in."""
    tables = set()
    for model in apps.get_models(include_auto_created=True):
        if model._meta.managed and not model._meta.proxy:
            tables.add(model._meta.db_table)
    return sorted(tables)


def count_rows(cursor, quote, existing: set[str]) -> dict[str, int]:
    counts = {}
    for table in model_tables():
        if table in existing:
            cursor.execute(f"SELECT COUNT(*) FROM {quote(table)}")  # noqa: S608  # nosec B608 - table names from our models
            counts[table] = cursor.fetchone()[0]
    return counts


def applied_migrations(cursor) -> list[list[str]]:
    cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
    return [list(row) for row in cursor.fetchall()]


def archive_folder_in(storage) -> str | None:
    """The backup archives' folder when it lies inside ``storage`` (relative to its root), or
    None: ``BACKUP_S3_PREFIX`` inside the bucket's ``S3_PREFIX`` (or anywhere in the bucket when
    the files are at its root), ``BACKUP_DIR`` inside the upload folder. Archives are never
    counted among the portal's files, whether or not backups go there now."""
    location = str(getattr(storage, "location", "") or "")
    if hasattr(storage, "bucket_name"):  # object storage: a file's key is <location>/<name>
        prefix, root = settings.BACKUP_S3_PREFIX.strip("/"), location.strip("/")
        if not root:
            return prefix or None
        return prefix[len(root) + 1:] if prefix.startswith(root + "/") else None
    if not location:
        return None
    try:
        inside = Path(settings.BACKUP_DIR).resolve().relative_to(Path(location).resolve())
    except ValueError:
        return None
    return inside.as_posix() if inside.parts else None


def storage_files(storage, path: str = ""):
    """Every file name in ``storage``, by walking ``listdir`` (works for object storage too),
    leaving out the backup archives' folder (``archive_folder_in``)."""
    yield from _walk(storage, path, archive_folder_in(storage))


def _walk(storage, path: str, skip: str | None):
    try:
        directories, files = storage.listdir(path)
    except FileNotFoundError:
        return
    for name in sorted(files):
        yield posixpath.join(path, name) if path else name
    for directory in sorted(directories):
        folder = posixpath.join(path, directory) if path else directory
        if folder != skip:
            yield from _walk(storage, folder, skip)


def _sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_image(data: bytes) -> bytes:
    """A database image that opens in memory: the portal runs SQLite in WAL mode, whose
    header (bytes 18 and 19, the file format versions: 2 for WAL) makes SQLite look for a
    WAL file that an image in memory cannot have. Version 1 (rollback journal) is the same
    database; the portal switches it back to WAL when it next connects."""
    if len(data) >= 20 and data[18:20] == b"\x02\x02":
        return data[:18] + b"\x01\x01" + data[20:]
    return data


def sqlite_load(data: bytes) -> sqlite3.Connection:
    """An in-memory database holding the image ``data``."""
    copy = sqlite3.connect(":memory:")
    try:
        copy.deserialize(sqlite_image(data))
        copy.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        copy.close()
        raise
    return copy


# --- Writing an archive -----------------------------------------------------------------------
class _Hashing(io.RawIOBase):
    """Reads from ``source`` and hashes what it passes on."""

    def __init__(self, source):
        self.source, self.sha256, self.size = source, hashlib.sha256(), 0

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.source.read(len(buffer))
        self.sha256.update(data)
        self.size += len(data)
        buffer[:len(data)] = data
        return len(data)


def _add(tar, name: str, source, size: int, members: dict) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    hashing = _Hashing(source)
    tar.addfile(info, hashing)
    if hashing.size != size:
        raise BackupError(f"{name} changed size while it was being backed up")
    members[name] = {"size": size, "sha256": hashing.sha256.hexdigest()}


def archive_name(now: datetime) -> str:
    return f"portal-backup-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.tar.gpg"


def create_backup(now: datetime, directory: Path | None = None) -> Path:
    """Write one encrypted archive into ``directory`` (``BACKUP_DIR``); returns its path.
    It is written under a ``.partial`` name and renamed when complete."""
    recipients = pgp.backup_recipients()
    directory = Path(directory or settings.BACKUP_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = directory / archive_name(now)
    partial = final.with_name(final.name + ".partial")
    manifest = {"format": FORMAT, "created_at": now.isoformat(), "portal_version": portal_version(),
                "django_version": django.get_version(), "database": {"vendor": connection.vendor}}
    members: dict[str, dict] = {}
    with pgp.encrypting_to_file(partial, recipients) as stream:
        with tarfile.open(fileobj=stream, mode="w|") as tar:
            manifest["database"].update(_add_database(tar, members))
            storage = storages["default"]
            names = list(storage_files(storage))
            for name in names:
                with storage.open(name, "rb") as handle:
                    _add(tar, FILES_PREFIX + name, handle, storage.size(name), members)
            manifest["files"] = len(names)
            manifest["members"] = members
            body = json.dumps(manifest, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(body))
    os.replace(partial, final)
    log.info("Backup written: %s (%s files, %s tables)", final, manifest["files"], len(manifest["database"]["counts"]))
    return final


def _add_database(tar, members) -> dict:
    if connection.vendor == "sqlite":
        return _add_sqlite(tar, members)
    if connection.vendor == "postgresql":
        return _add_postgresql(tar, members)
    raise BackupError(f"backups support SQLite and PostgreSQL, not {connection.vendor}")


def _add_sqlite(tar, members) -> dict:
    """A consistent copy with SQLite's online backup API, into memory (never a clear file)."""
    connection.ensure_connection()
    copy = sqlite3.connect(":memory:")
    try:
        connection.connection.backup(copy)
        cursor = copy.cursor()
        existing = {row[0] for row in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        info = {"member": SQLITE_MEMBER, "counts": count_rows(cursor, _sqlite_quote, existing),
                "migrations": applied_migrations(cursor) if "django_migrations" in existing else []}
        data = sqlite_image(copy.serialize())
    finally:
        copy.close()
    _add(tar, SQLITE_MEMBER, io.BytesIO(data), len(data), members)
    return info


def _pg_command(program: str, db: dict, *args: str, dbname: str | None = None) -> tuple[list[str], dict]:
    binary = shutil.which(program)
    if binary is None:
        raise BackupError(f"{program} was not found: install the PostgreSQL client tools (same major version "
                          "as the server, or newer)")
    command = [binary, "--no-password"]
    for option, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if db.get(key):
            command += [option, str(db[key])]
    command += [*args, "--dbname", dbname or db["NAME"]]
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    return command, env


def _run(command, env, *, stdin=None, what: str) -> None:
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,  # noqa: S603
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            if stdin is not None:
                shutil.copyfileobj(stdin, process.stdin, CHUNK)
                process.stdin.close()
            code = process.wait(timeout=3600)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if code != 0:
            stderr.seek(0)
            raise BackupError(f"{what} failed: {stderr.read().decode('utf-8', 'replace').strip()[-600:]}")


def _add_postgresql(tar, members) -> dict:
    """pg_dump of one snapshot, which the row counts and the migration list also read."""
    db = connection.settings_dict
    folder = tempfile.mkdtemp(prefix="disclosure-backup-")  # 0700; holds the dump until it is archived
    try:
        dump = Path(folder) / "database.pgdump"
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
            existing = set(connection.introspection.table_names(cursor))
            info = {"member": PG_MEMBER, "counts": count_rows(cursor, connection.ops.quote_name, existing),
                    "migrations": applied_migrations(cursor) if "django_migrations" in existing else [],
                    "server_version": connection.pg_version}
            command, env = _pg_command("pg_dump", db, "--format=custom", "--snapshot", snapshot, "--file", str(dump))
            _run(command, env, what="pg_dump")
        with open(dump, "rb") as handle:
            _add(tar, PG_MEMBER, handle, dump.stat().st_size, members)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return info


# --- Archives in a folder (BACKUP_DIR; the bucket is in backup_targets.py) ----------------------
def archives(directory: Path | None = None) -> list[tuple[datetime, Path]]:
    """Complete archives, oldest first, with the time in their names."""
    directory = Path(directory or settings.BACKUP_DIR)
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    found = []
    for path in entries:
        match = ARCHIVE_NAME.match(path.name)
        if match and path.is_file():
            found.append((datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC), path))
    return sorted(found)


def newest_backup_at(directory: Path | None = None) -> datetime | None:
    """When the newest complete archive was made (from its name), or None."""
    found = archives(directory)
    return found[-1][0] if found else None


def delete_old_archives(now: datetime, directory: Path | None = None) -> int:
    """Delete archives made more than ``BACKUP_RETENTION_DAYS`` ago, and ``.partial``
    leftovers of a backup that was killed; returns how many archives were deleted."""
    cutoff = now - timedelta(days=settings.BACKUP_RETENTION_DAYS)
    deleted = 0
    for made_at, path in archives(directory):
        if made_at < cutoff:
            path.unlink(missing_ok=True)
            deleted += 1
    for leftover in Path(directory or settings.BACKUP_DIR).glob("portal-backup-*.tar.gpg.partial"):
        if datetime.fromtimestamp(leftover.stat().st_mtime, UTC) < now - timedelta(days=1):
            leftover.unlink(missing_ok=True)
    return deleted


# --- Reading an archive -----------------------------------------------------------------------
def _safe_member(member) -> str:
    name = member.name
    if not member.isfile() or name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise BackupError(f"the archive holds an unexpected entry {name!r}: refusing it")
    return name


def check_archive(path: Path) -> dict:
    """Decrypt the archive to its end and compare every member with the manifest; returns
    the manifest, or raises ``BackupError`` naming every difference. Touches nothing."""
    seen: dict[str, dict] = {}
    manifest = None
    try:
        with pgp.decrypting_file(path) as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    name = _safe_member(member)
                    handle = tar.extractfile(member)
                    if name == MANIFEST:
                        manifest = json.loads(handle.read(16 * CHUNK))
                        continue
                    digest, size = hashlib.sha256(), 0
                    while chunk := handle.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                    seen[name] = {"size": size, "sha256": digest.hexdigest()}
    except pgp.PGPError as error:
        raise BackupError(f"{path} is damaged, or not encrypted to a key in this keyring: {error}") from None
    except (tarfile.TarError, ValueError, EOFError, OSError) as error:
        raise BackupError(f"{path} is damaged: it is not a complete backup archive ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} has no readable manifest: it is not a complete backup archive")
    expected = manifest.get("members") or {}
    problems = [f"{name}: missing from the archive" for name in expected if name not in seen]
    problems += [f"{name}: not in the manifest" for name in seen if name not in expected]
    problems += [f"{name}: checksum or size differs from the manifest" for name in expected
                 if name in seen and seen[name] != expected[name]]
    if problems:
        raise BackupError(f"{path} does not match its manifest:\n  " + "\n  ".join(problems))
    return manifest


def _restore_members(path: Path, *, database, storage) -> None:
    """The second pass: hand the database member to ``database(name, stream)`` and write
    each file into ``storage`` under its own name."""
    try:
        with pgp.decrypting_file(path) as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    name = _safe_member(member)
                    handle = tar.extractfile(member)
                    if name in (SQLITE_MEMBER, PG_MEMBER):
                        database(name, handle)
                    elif name.startswith(FILES_PREFIX):
                        target = name[len(FILES_PREFIX):]
                        if storage.exists(target):
                            storage.delete(target)
                        # A tar stream's member cannot seek and raises when asked (object storage
                        # asks); _Hashing passes its bytes on and answers no.
                        content = File(_Hashing(handle), name=posixpath.basename(target))
                        content.size = member.size  # a tar stream cannot seek to measure it
                        saved = storage.save(target, content)
                        if saved != target:
                            raise BackupError(f"the storage saved {target} as {saved}")
    except pgp.PGPError as error:
        raise BackupError(f"{path} could not be read a second time: {error}") from None


# --- Restoring into the configured portal -------------------------------------------------
def database_is_empty() -> bool:
    return not connection.introspection.table_names()


def storage_is_empty(storage=None) -> bool:
    return next(storage_files(storage or storages["default"]), None) is None


def restore(path: Path, *, force: bool = False) -> dict:
    """Restore the archive into the configured database and default storage; returns its
    manifest. Refuses a non-empty target unless ``force``."""
    manifest = check_archive(path)
    vendor = manifest["database"]["vendor"]
    if vendor != connection.vendor:
        raise BackupError(f"the archive holds a {vendor} database; this portal is configured for {connection.vendor}")
    storage = storages["default"]
    if not force:
        if not database_is_empty():
            raise BackupError("the database is not empty: restore into an empty database, or pass --force to "
                              "replace what is in it")
        if not storage_is_empty(storage):
            raise BackupError("the file storage is not empty: restore into empty storage, or pass --force")

    def database(name, stream):
        if vendor == "sqlite":
            _restore_sqlite(stream, connection)
        else:
            _restore_postgresql(stream, connection.settings_dict, clean=force)

    _restore_members(path, database=database, storage=storage)
    connection.close()
    return manifest


def _restore_sqlite(stream, target_connection) -> None:
    try:
        copy = sqlite_load(stream.read())
    except sqlite3.Error as error:
        raise BackupError(f"the SQLite database in the archive cannot be opened: {error}") from None
    try:
        target_connection.ensure_connection()
        copy.backup(target_connection.connection)
    except sqlite3.Error as error:
        raise BackupError(f"the SQLite database could not be restored: {error}") from None
    finally:
        copy.close()


def _restore_postgresql(stream, db: dict, *, clean: bool, dbname: str | None = None) -> None:
    args = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    if clean:
        args += ["--clean", "--if-exists"]
    command, env = _pg_command("pg_restore", db, *args, dbname=dbname)
    _run(command, env, stdin=stream, what="pg_restore")


def restored_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        return count_rows(cursor, connection.ops.quote_name, set(connection.introspection.table_names(cursor)))


def compare_counts(expected: dict, found: dict) -> list[str]:
    return [f"table {table}: {expected[table]} rows in the manifest, {found.get(table)} restored"
            for table in sorted(expected) if found.get(table) != expected[table]]


# --- The drill: restore into scratch copies ------------------------------------------------
@dataclass
class Verification:
    manifest: dict
    counts: dict
    files_checked: int
    problems: list[str]


def verify(path: Path) -> Verification:
    """Restore into a scratch database (SQLite: a temporary file; PostgreSQL: a temporary
    database) and scratch storage (a temporary folder), compare, and throw them away."""
    manifest = check_archive(path)
    vendor = manifest["database"]["vendor"]
    folder = tempfile.mkdtemp(prefix="disclosure-verify-")
    scratch_db = None
    try:
        storage = FileSystemStorage(location=os.path.join(folder, "files"))
        counts: dict = {}

        def database(name, stream):
            nonlocal scratch_db, counts
            if vendor == "sqlite":
                scratch = sqlite3.connect(os.path.join(folder, "scratch.sqlite3"))
                try:
                    copy = sqlite_load(stream.read())
                    copy.backup(scratch)
                    copy.close()
                    cursor = scratch.cursor()
                    existing = {row[0] for row in cursor.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                    counts = count_rows(cursor, _sqlite_quote, existing)
                except sqlite3.Error as error:
                    raise BackupError(f"the SQLite database could not be restored: {error}") from None
                finally:
                    scratch.close()
            elif vendor == "postgresql":
                scratch_db = f"{connection.settings_dict['NAME']}_verify_{secrets.token_hex(4)}"[:63]
                _admin_sql("CREATE DATABASE {}", scratch_db)
                _restore_postgresql(stream, connection.settings_dict, clean=False, dbname=scratch_db)
                counts = _pg_counts(scratch_db)
            else:
                raise BackupError(f"unknown database vendor {vendor!r} in the manifest")

        _restore_members(path, database=database, storage=storage)
        problems = compare_counts(manifest["database"]["counts"], counts)
        files = 0
        for name, expected in manifest["members"].items():
            if not name.startswith(FILES_PREFIX):
                continue
            files += 1
            digest = hashlib.sha256()
            try:
                with storage.open(name[len(FILES_PREFIX):], "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        digest.update(chunk)
            except FileNotFoundError:
                problems.append(f"{name}: not restored")
                continue
            if digest.hexdigest() != expected["sha256"]:
                problems.append(f"{name}: restored copy differs from the manifest")
        return Verification(manifest, counts, files, problems)
    finally:
        if scratch_db:
            _admin_sql("DROP DATABASE IF EXISTS {} WITH (FORCE)", scratch_db)
        shutil.rmtree(folder, ignore_errors=True)


def _pg_connect(dbname: str):
    import psycopg

    db = connection.settings_dict
    params = {"dbname": dbname, "user": db.get("USER") or None, "password": db.get("PASSWORD") or None,
              "host": db.get("HOST") or None, "port": db.get("PORT") or None}
    return psycopg.connect(**{key: value for key, value in params.items() if value}, autocommit=True)


def _admin_sql(statement: str, database: str) -> None:
    """CREATE/DROP DATABASE, which cannot run in a transaction: on a connection of its own."""
    from psycopg import sql

    with _pg_connect(connection.settings_dict["NAME"]) as admin:
        admin.execute(sql.SQL(statement).format(sql.Identifier(database)))


def _pg_counts(dbname: str) -> dict[str, int]:
    with _pg_connect(dbname) as scratch:
        cursor = scratch.cursor()
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        existing = {row[0] for row in cursor.fetchall()}
        return count_rows(cursor, connection.ops.quote_name, existing)

