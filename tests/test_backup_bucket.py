"""Backups into the object-storage bucket (BACKUP_TARGET=bucket), against a real S3 server
(moto's, over HTTP, behind a TCP proxy the tests can cut or break mid-upload).

backup -> wipe the database and the files -> restore from the bucket serves the same portal;
retention deletes old archives in the bucket; /healthz and the dashboard read the newest
archive there; a flipped byte in the bucket's object fails the drill loudly; a failed upload
leaves no archive and no temporary copy; and the archives never count among the portal's
files, even in the same bucket."""

import io
import random
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from unittest import skipIf, skipUnless

from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone
from django_q.models import Schedule

from disclosure import backup, backup_targets, checks, health, pgp, tasks
from disclosure.models import Attachment, Report, StatusLink
from disclosure.storage import uses_object_storage
from tests.base import BaseTestCase, make_report, upload
from tests.pgp_keys import TeamKeyMixin
from tests.s3 import OwnBucketMixin, moto_available, storages_for
from tests.test_backups import POC, BackupCase, wipe_database, wipe_storage
from tests.test_health import HealthzMixin

FILES = "portal"
BACKUPS = "backups"


class BucketMixin(OwnBucketMixin):
    """A bucket of the test's own (tests/s3.py); files under ``files_prefix`` and backups
    under ``backups_prefix``."""

    files_prefix, backups_prefix = FILES, BACKUPS

    def setUp(self):
        super().setUp()
        self.use_prefixes(self.files_prefix, self.backups_prefix)

    def use_prefixes(self, files: str, backups: str):
        self.enterContext(override_settings(
            STORAGES=storages_for(self.proxy_url, self.bucket, files), S3_BUCKET=self.bucket,
            S3_PREFIX=files, BACKUP_TARGET="bucket", BACKUP_S3_PREFIX=backups))

    def keys(self, prefix: str = "") -> list[str]:
        return [key for key in self.server.keys(self.bucket) if key.startswith(prefix)]

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put_archive(self, made_at, body: bytes = b"an older archive") -> str:
        key = f"{BACKUPS}/{backup.archive_name(made_at)}"
        self.server.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key


@skipUnless(moto_available(), "moto[server] is not installed (pip install -r requirements-dev.txt)")
class BucketBackupCase(BucketMixin, TeamKeyMixin, TransactionTestCase):
    def command(self, *args) -> str:
        out = io.StringIO()
        call_command(*args, stdout=out)
        return out.getvalue()

    def make_backup(self) -> str:
        """``manage.py backup``; returns the archive's location as the command printed it."""
        output = self.command("backup")
        [key] = self.keys(f"{BACKUPS}/")
        self.assertIn(f"Backup written to {self.url(key)}", output)
        self.addCleanup(self.rebuild, self.url(key))
        return self.url(key)

    def rebuild(self, location):
        """A test that wiped the database leaves the tables back for the next test."""
        if backup.database_is_empty():
            with backup_targets.fetched(location) as path:
                backup.restore(path, force=True)

    def manifest(self, location) -> dict:
        with backup_targets.fetched(location) as path:
            return backup.check_archive(path)


class BucketBackupRestoreTests(BucketBackupCase):
    def test_backup_to_the_bucket_wipe_restore_serves_the_same_portal(self):
        call_command("migrate", verbosity=0)  # TransactionTestCase flushed the schedules; migrate makes them
        report, token = make_report(files=[upload("poc.bin", POC, "application/octet-stream")])
        before = Report.objects.values("tracking_id", "ack_due_at", "assess_due_at", "due_at", "status").get()
        schedules = sorted(Schedule.objects.values_list("name", "func", "schedule_type", "next_run"))
        [file_key] = self.keys(f"{FILES}/")

        location = self.make_backup()
        self.assertRegex(location, rf"^s3://{self.bucket}/{BACKUPS}/portal-backup-\d{{8}}T\d{{6}}Z\.tar\.gpg$")
        body = self.server.client.get_object(Bucket=self.bucket, Key=location.split("/", 3)[3])["Body"].read()
        self.assertNotIn(b"SQLite format", body)  # encrypted, not a tar in clear
        self.assertNotIn(b"manifest.json", body)
        self.assertEqual(backup.archives(), [])  # nothing in BACKUP_DIR
        self.assertIn(location, self.command("backup", "--list"))

        wipe_database()
        wipe_storage()
        self.assertEqual(self.keys(f"{FILES}/"), [])
        output = self.command("restore", location)
        self.assertIn("System checks passed", output)

        self.assertEqual(self.keys(f"{FILES}/"), [file_key])
        self.assertEqual(Report.objects.values("tracking_id", "ack_due_at", "assess_due_at", "due_at", "status").get(),
                         before)
        self.assertEqual(sorted(Schedule.objects.values_list("name", "func", "schedule_type", "next_run")), schedules)
        self.assertEqual(StatusLink.find_report(token).tracking_id, before["tracking_id"])
        self.assertContains(self.client.get(f"/status/{token}/"), before["tracking_id"])
        download = self.client.get(f"/status/{token}/files/{Attachment.objects.get().pk}/")
        self.assertEqual(download.status_code, 200)
        self.assertEqual(b"".join(download.streaming_content), POC)

    def test_restore_takes_an_archive_by_its_name_and_refuses_what_is_not_there(self):
        make_report()
        location = self.make_backup()
        name = location.rsplit("/", 1)[1]
        self.assertIn("Verification passed", self.command("restore", "--verify", name))
        with self.assertRaisesMessage(CommandError, f"s3://{self.bucket}/{BACKUPS}/portal-backup-20200101T000000Z"
                                                    ".tar.gpg: no such archive in the bucket"):
            self.command("restore", "--verify", "portal-backup-20200101T000000Z.tar.gpg")
        with self.assertRaisesMessage(CommandError, f"is not in this portal's bucket ({self.bucket})"):
            self.command("restore", "--verify", f"s3://another-bucket/{BACKUPS}/{name}")

    def test_verify_fails_loudly_on_one_flipped_byte_in_the_bucket(self):
        make_report(files=[upload("poc.bin", POC)])
        location = self.make_backup()
        self.assertIn("Verification passed", self.command("restore", "--verify", location))
        key = location.split("/", 3)[3]
        intact = self.server.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        self.addCleanup(self.server.client.put_object, Bucket=self.bucket, Key=key, Body=intact)  # for rebuild()
        data = bytearray(intact)
        data[len(data) // 2] ^= 0x01
        self.server.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))
        with self.assertRaises(CommandError) as raised:
            self.command("restore", "--verify", location)
        self.assertTrue(str(raised.exception).startswith(f"RESTORE VERIFICATION FAILED: {location} is damaged"),
                        raised.exception)
        wipe_database()
        with self.assertRaisesMessage(CommandError, "Restore failed"):
            self.command("restore", location)
        self.assertTrue(backup.database_is_empty())  # checked before anything was touched
        self.server.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data[:len(data) // 2]))  # truncated
        with self.assertRaisesMessage(CommandError, "RESTORE VERIFICATION FAILED"):
            self.command("restore", "--verify", location)


class SharedBucketTests(BucketBackupCase):
    """Archives in the same bucket as the files are never backed up or restored as files."""

    def check_earlier_backups_are_left_out(self, files: str, backups: str):
        self.use_prefixes(files, backups)
        make_report(files=[upload("poc.bin", POC)])
        now = timezone.now()
        first = backup_targets.make_backup(now - timedelta(days=1))
        second = backup_targets.make_backup(now)
        self.addCleanup(self.rebuild, second)
        self.assertEqual(len(self.keys(f"{backups}/")), 2)
        members = sorted(self.manifest(second)["members"])
        self.assertEqual(len(members), 2, members)  # the database and the one attachment
        self.assertRegex(members[1], r"^files/attachments/\d{4}/\d{2}/[0-9a-f]{32}$")
        self.assertEqual(self.manifest(first)["members"].keys(), self.manifest(second)["members"].keys())
        wipe_storage()  # the files only: the archives stay
        self.assertTrue(backup.storage_is_empty())
        self.assertEqual(len(self.keys(f"{backups}/")), 2)
        wipe_database()
        self.command("restore", second)
        self.assertEqual(Attachment.objects.get().read_plain()[0], POC)

    def test_files_at_the_buckets_root_and_backups_beside_them(self):
        self.check_earlier_backups_are_left_out("", "backups")

    def test_backups_in_a_folder_inside_the_files_prefix(self):
        self.check_earlier_backups_are_left_out("portal", "portal/backups")


class BucketRetentionTests(BucketBackupCase):
    def test_the_daily_backup_keeps_retention_days_of_archives_in_the_bucket(self):
        make_report(files=[upload("poc.bin", POC)])
        files = self.keys(f"{FILES}/")
        now = timezone.now()
        for days in (45, 31, 29, 1):
            self.put_archive(now - timedelta(days=days))
        self.server.client.put_object(Bucket=self.bucket, Key=f"{BACKUPS}/notes.txt", Body=b"not an archive")
        with override_settings(BACKUP_RETENTION_DAYS=30):
            result = tasks.run_backup(now)
        self.assertEqual(result["deleted"], 2)
        self.assertEqual(result["archive"], self.url(f"{BACKUPS}/{backup.archive_name(now)}"))
        kept = [archive.made_at for archive in backup_targets.archives()]
        self.assertEqual(len(kept), 3)
        self.assertTrue(all(now - made < timedelta(days=30) for made in kept))
        self.assertEqual(backup_targets.newest_backup_at(), now.replace(microsecond=0))
        self.assertIn(f"{BACKUPS}/notes.txt", self.keys())
        self.assertEqual(self.keys(f"{FILES}/"), files)

    def test_a_killed_backups_unfinished_upload_is_aborted(self):
        """(moto dates every upload in 2010, so only the "older than a day" side can be shown.)"""
        for key in (f"{BACKUPS}/{backup.archive_name(timezone.now())}", f"{FILES}/attachments/unfinished"):
            self.server.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        backup_targets.delete_old(timezone.now())
        uploads = self.server.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        self.assertEqual([item["Key"] for item in uploads], [f"{FILES}/attachments/unfinished"])  # not ours


class FailedUploadTests(BucketBackupCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="disclosure-test-tmp-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.enterContext(_tempdir(self.tmp))

    def test_an_upload_broken_half_way_leaves_no_archive_and_no_local_copy(self):
        earlier_at = timezone.now().replace(microsecond=0) - timedelta(days=2)
        earlier = self.put_archive(earlier_at)
        content = random.Random(18).randbytes(300_000)  # an archive well over the limit below
        make_report(files=[upload("dump.bin", content, "application/octet-stream")])
        self.proxy.cut()  # no pooled connection from before the limit
        self.proxy.restore()
        self.proxy.upload_limit = 100_000
        with self.assertRaisesMessage(CommandError, f"Backup failed: uploading the archive to s3://{self.bucket}/"):
            self.command("backup")
        with self.assertRaises(backup.BackupError):
            tasks.run_backup()  # the scheduled backup fails too (listed under Failed tasks), deleting nothing
        self.proxy.upload_limit = None
        self.assertEqual(self.keys(f"{BACKUPS}/"), [earlier])
        self.assertEqual(list(Path(self.tmp).iterdir()), [])  # the encrypted local copy is gone
        self.assertEqual(backup_targets.newest_backup_at(), earlier_at)

    def test_an_unreachable_store_fails_the_backup_clearly_and_leaves_nothing(self):
        earlier = self.put_archive(timezone.now() - timedelta(days=2))
        make_report(files=[upload("poc.bin", POC)])
        self.proxy.cut()
        with self.assertRaisesMessage(CommandError, "Backup failed"):
            self.command("backup")
        self.proxy.restore()
        self.assertEqual(self.keys(f"{BACKUPS}/"), [earlier])
        self.assertEqual(list(Path(self.tmp).iterdir()), [])


class _tempdir:
    """``tempfile``'s folder for this process set to ``path`` (as TMPDIR would)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.before, tempfile.tempdir = tempfile.tempdir, self.path

    def __exit__(self, *exc):
        tempfile.tempdir = self.before


@skipUnless(moto_available(), "moto[server] is not installed (pip install -r requirements-dev.txt)")
class BucketBackupHealthTests(BucketMixin, TeamKeyMixin, HealthzMixin, BaseTestCase):
    def test_healthz_reports_the_newest_archive_in_the_bucket(self):
        tasks.sweep()
        with override_settings(BACKUP_HOUR=2):
            status, body = self.healthz()
            self.assertEqual((status, body["failing"], body["problems"]),
                             (503, ["backup"], ["no backup has been made yet"]))
            self.put_archive(timezone.now() - timedelta(hours=3))
            health.forget()  # a listing of the bucket is remembered for a minute
            status, body = self.healthz()
            self.assertEqual((status, body["status"], body["last_backup_hours_ago"]), (200, "ok", 3.0), body)
            self.proxy.cut()
            health.forget()
            status, body = self.healthz()
            self.assertEqual((status, body["failing"]), (503, ["file_storage", "backup"]), body)
            self.assertIn(f"the backups in s3://{self.bucket}/{BACKUPS}/ cannot be listed", body["problems"])

    def test_the_dashboard_shows_the_newest_archive_in_the_bucket(self):
        self.login(self.lead)
        with override_settings(BACKUP_HOUR=2):
            self.assertContains(self.client.get("/admin/metrics/"), "Newest backup: none yet")
            self.put_archive(timezone.now() - timedelta(hours=5))
            self.assertContains(self.client.get("/admin/metrics/"), "(5\xa0hours ago)")
            self.proxy.cut()
            self.assertContains(self.client.get("/admin/metrics/"),
                                f"the backups in s3://{self.bucket}/{BACKUPS}/ cannot be listed")


class LocalArchiveTests(BackupCase):
    def test_list_and_restore_by_name_from_backup_dir(self):
        make_report()
        path = self.make_backup()
        self.assertEqual(self.command("backup", "--list").split()[0], str(path))
        self.assertIn("Verification passed", self.command("restore", "--verify", path.name))

    def test_an_archive_for_a_key_this_keyring_lacks_says_so(self):
        make_report()
        path = self.make_backup()
        with tempfile.TemporaryDirectory() as empty, override_settings(GNUPG_HOME=Path(empty)):
            with self.assertRaises(CommandError) as raised:
                self.command("restore", "--verify", str(path))
            pgp.stop_agent(empty)
        self.assertIn("not encrypted to a key in this keyring: the archive could not be decrypted intact: NO_SECKEY",
                      str(raised.exception))

    @skipIf(uses_object_storage(), "a BACKUP_DIR inside a local upload folder; the bucket's case is tested above")
    def test_a_backup_dir_inside_the_upload_folder_is_not_backed_up(self):
        inside = Path(settings.MEDIA_ROOT, "backups")
        with override_settings(BACKUP_DIR=inside):
            make_report(files=[upload("poc.bin", POC)])
            first = Path(backup_targets.make_backup(timezone.now() - timedelta(days=1)))
            second = Path(backup_targets.make_backup(timezone.now()))
            self.assertEqual(first.parent, inside)
            self.assertEqual(backup.check_archive(second)["files"], 1)


class BackupTargetCheckTests(TestCase):
    def check_ids(self, **overrides):
        with override_settings(**overrides):
            return [message.id for message in checks.check_backup_target(None)]

    def test_bucket_needs_object_storage_and_a_folder_of_its_own(self):
        s3 = {"STORAGES": storages_for("http://127.0.0.1:9", "portal-bucket", "portal"), "S3_BUCKET": "portal-bucket",
              "S3_PREFIX": "portal", "BACKUP_TARGET": "bucket"}
        self.assertEqual(self.check_ids(BACKUP_TARGET="dir"), [])
        self.assertEqual(self.check_ids(BACKUP_TARGET="s3"), ["disclosure.E033"])
        self.assertEqual(self.check_ids(BACKUP_TARGET="bucket", S3_BUCKET=""), ["disclosure.E033"])
        self.assertEqual(self.check_ids(**s3, BACKUP_S3_PREFIX="backups"), [])
        self.assertEqual(self.check_ids(**s3, BACKUP_S3_PREFIX="portal/backups"), [])
        for overlapping in ("", "portal"):
            self.assertEqual(self.check_ids(**s3, BACKUP_S3_PREFIX=overlapping), ["disclosure.E034"], overlapping)
        self.assertEqual(self.check_ids(**{**s3, "S3_PREFIX": "backups/portal"}, BACKUP_S3_PREFIX="backups"),
                         ["disclosure.E034"])

    def test_the_default_target_follows_s3_bucket(self):
        from tests.base import run_fresh

        code = "from django.conf import settings; print(settings.BACKUP_TARGET)"
        self.assertEqual(run_fresh("-c", f"import django; django.setup(); {code}").stdout.strip(), "dir")
        self.assertEqual(run_fresh("-c", f"import django; django.setup(); {code}", S3_BUCKET="b").stdout.strip(),
                         "bucket")
