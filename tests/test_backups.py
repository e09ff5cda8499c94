"""Backups are restored, not hoped for: backup -> wipe -> restore serves the same portal,
and the restore drill (``restore --verify``) fails loudly on a damaged archive."""

import io
import os
import shutil
import sqlite3
import tempfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone
from django_q.models import Schedule

from disclosure import backup, checks, pgp, tasks
from disclosure.models import Attachment, Report, StatusLink
from tests.base import LONDON, BaseTestCase, make_report, own_storage, upload
from tests.pgp_keys import TeamKeyMixin
from tests.test_health import HealthzMixin

POC = bytes(range(256)) * 40 + b"the end"


def wipe_database():
    """Drop every table, as a lost database server would leave the portal."""
    tables = connection.introspection.table_names()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            for table in tables:
                cursor.execute(f'DROP TABLE "{table}"')
            cursor.execute("PRAGMA foreign_keys = ON")
    assert backup.database_is_empty()


def wipe_storage():
    storage = storages["default"]
    for name in list(backup.storage_files(storage)):
        storage.delete(name)
    assert backup.storage_is_empty(storage)


class BackupCase(TeamKeyMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        own_storage(self)  # a folder, or a prefix in the bucket (TEST_OBJECT_STORAGE=s3), of its own
        self.backups = Path(tempfile.mkdtemp(prefix="disclosure-test-backups-"))
        self.addCleanup(shutil.rmtree, self.backups, ignore_errors=True)
        overrides = override_settings(BACKUP_DIR=self.backups)
        overrides.enable()
        self.addCleanup(overrides.disable)

    def command(self, *args) -> str:
        out = io.StringIO()
        call_command(*args, stdout=out)
        return out.getvalue()

    def make_backup(self) -> Path:
        output = self.command("backup")
        [(_, path)] = backup.archives(self.backups)
        self.assertIn(str(path), output)
        self.addCleanup(self.rebuild, path)
        return path

    def rebuild(self, path):
        """A test that wiped the database leaves the tables back for the next test."""
        if backup.database_is_empty():
            backup.restore(path, force=True)


class BackupRestoreTests(BackupCase):
    def test_backup_wipe_restore_serves_the_same_portal(self):
        call_command("migrate", verbosity=0)  # TransactionTestCase flushed the schedules; migrate makes them
        report, token = make_report(files=[upload("poc.bin", POC, "application/octet-stream")])
        attachment = report.attachments.get()
        self.assertTrue(attachment.encrypted)
        before = Report.objects.values("tracking_id", "ack_due_at", "assess_due_at", "due_at", "status").get()
        schedules = sorted(Schedule.objects.values_list("name", "func", "schedule_type", "next_run"))
        self.assertIn("disclosure-sweep", [row[0] for row in schedules])

        path = self.make_backup()
        self.assertEqual(oct(path.stat().st_mode & 0o777), "0o600")
        self.assertNotIn(b"SQLite format", path.read_bytes())  # encrypted, not a tar in clear
        self.assertNotIn(b"manifest.json", path.read_bytes())

        wipe_database()
        wipe_storage()
        output = self.command("restore", str(path))
        self.assertIn("System checks passed", output)

        self.assertEqual(Report.objects.values("tracking_id", "ack_due_at", "assess_due_at", "due_at", "status").get(),
                         before)
        self.assertEqual(sorted(Schedule.objects.values_list("name", "func", "schedule_type", "next_run")), schedules)
        self.assertEqual(StatusLink.find_report(token).tracking_id, before["tracking_id"])
        page = self.client.get(f"/status/{token}/")
        self.assertContains(page, before["tracking_id"])
        download = self.client.get(f"/status/{token}/files/{Attachment.objects.get().pk}/")
        self.assertEqual(download.status_code, 200)
        self.assertEqual(b"".join(download.streaming_content) if download.streaming else download.content, POC)

    def test_restore_refuses_a_target_that_is_not_empty(self):
        make_report()
        path = self.make_backup()
        with self.assertRaisesMessage(CommandError, "the database is not empty"):
            self.command("restore", str(path))
        wipe_database()
        storages["default"].save("stray", ContentFile(b"left behind"))
        with self.assertRaisesMessage(CommandError, "the file storage is not empty"):
            self.command("restore", str(path))
        self.assertTrue(backup.database_is_empty())  # refused before touching anything

    def test_restore_force_replaces_what_is_there(self):
        report, token = make_report(files=[upload("poc.bin", POC)])
        path = self.make_backup()
        report.delete()
        make_report(title="Arrived after the backup")
        self.command("restore", "--force", str(path))
        self.assertEqual(list(Report.objects.values_list("title", flat=True)), ["Stored XSS in profile page"])
        self.assertEqual(Attachment.objects.get().read_plain()[0], POC)

    def test_verify_restores_a_scratch_copy_and_compares(self):
        make_report(files=[upload("poc.bin", POC)])
        path = self.make_backup()
        output = self.command("restore", "--verify", str(path))
        self.assertIn("Verification passed", output)
        self.assertIn("Files: 1 restored", output)
        self.assertEqual(Report.objects.count(), 1)  # the portal itself is untouched

    def test_verify_fails_loudly_on_one_flipped_byte(self):
        make_report(files=[upload("poc.bin", POC)])
        path = self.make_backup()
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        damaged = path.with_name("damaged.tar.gpg")
        damaged.write_bytes(bytes(data))
        with self.assertRaisesMessage(CommandError, "RESTORE VERIFICATION FAILED"):
            self.command("restore", "--verify", str(damaged))
        wipe_database()
        with self.assertRaisesMessage(CommandError, "Restore failed"):
            self.command("restore", str(damaged))
        self.assertTrue(backup.database_is_empty())  # checked before anything was touched

    def test_an_archive_that_is_not_one_is_refused_clearly(self):
        junk = self.backups / "junk.tar.gpg"
        junk.write_bytes(b"not an archive at all")
        with self.assertRaisesMessage(CommandError, "RESTORE VERIFICATION FAILED"):
            self.command("restore", "--verify", str(junk))
        with self.assertRaisesMessage(CommandError, "no such file"):
            self.command("restore", str(self.backups / "missing.tar.gpg"))


class BackupDirTests(BackupCase):
    def test_dir_writes_elsewhere_and_the_archive_verifies(self):
        make_report()
        with tempfile.TemporaryDirectory() as folder:
            output = self.command("backup", "--dir", folder)
            [(_, path)] = backup.archives(Path(folder))
            self.assertIn(str(path), output)
            self.assertEqual(backup.archives(self.backups), [])
            self.assertEqual(oct(path.stat().st_mode & 0o777), "0o600")
            self.assertIn("Verification passed", self.command("restore", "--verify", str(path)))


class BackupWithoutKeyTests(TransactionTestCase):
    @override_settings(TEAM_KEY_FINGERPRINT="")
    def test_no_backup_is_written_without_a_team_key(self):
        with tempfile.TemporaryDirectory() as folder, override_settings(BACKUP_DIR=Path(folder)):
            with self.assertRaisesMessage(CommandError, "never written unencrypted"):
                call_command("backup", stdout=io.StringIO())
            self.assertEqual(list(Path(folder).iterdir()), [])


class BackupKeyTests(BackupCase):
    def test_the_archive_is_also_encrypted_to_the_backup_key(self):
        from tests.pgp_keys import ResearcherKeyring, export_public, gpg_cli, researcher_key

        with ResearcherKeyring() as offline:
            fingerprint = researcher_key(offline, uid="Offline backup key <backup@example.com>")
            pgp.import_team_key(export_public(offline, fingerprint))
            with override_settings(BACKUP_KEY_FINGERPRINT=fingerprint):
                make_report()
                path = self.make_backup()
            result = gpg_cli(offline.home, "--decrypt", str(path))
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn(b"manifest.json", result.stdout)


class ScheduledBackupTests(BackupCase):
    def test_the_daily_backup_keeps_retention_days_of_archives(self):
        now = timezone.now()
        for days in (45, 31, 29, 1):
            made = now - timedelta(days=days)
            (self.backups / backup.archive_name(made)).write_bytes(b"an older archive")
        partial = self.backups / (backup.archive_name(now - timedelta(days=3)) + ".partial")
        partial.write_bytes(b"killed half way")
        three_days_ago = (now - timedelta(days=3)).timestamp()
        os.utime(partial, (three_days_ago, three_days_ago))
        running = self.backups / (backup.archive_name(now - timedelta(minutes=5)) + ".partial")
        running.write_bytes(b"another backup still being written")
        with override_settings(BACKUP_RETENTION_DAYS=30):
            result = tasks.run_backup(now)
        kept = [made for made, _ in backup.archives(self.backups)]
        self.assertEqual(result["deleted"], 2)
        self.assertEqual(len(kept), 3)
        self.assertEqual(backup.newest_backup_at(self.backups), now.replace(microsecond=0))
        self.assertTrue(all(now - made < timedelta(days=30) for made in kept))
        self.assertFalse(partial.exists())
        self.assertTrue(running.exists())

    def test_a_failed_backup_deletes_nothing_and_leaves_no_partial_archive(self):
        old = self.backups / backup.archive_name(timezone.now() - timedelta(days=60))
        old.write_bytes(b"the only archive")
        with override_settings(BACKUP_KEY_FINGERPRINT="0123456789ABCDEF0123456789ABCDEF01234567"):
            with self.assertRaises(pgp.PGPError):
                tasks.run_backup()
        self.assertEqual(list(self.backups.iterdir()), [old])


class BackupScheduleTests(TeamKeyMixin, HealthzMixin, BaseTestCase):
    def test_the_backup_runs_daily_at_backup_hour_programme_time(self):
        with override_settings(BACKUP_HOUR=2):
            tasks.ensure_schedules()
            tasks.ensure_schedules()
        schedule = Schedule.objects.get(name="disclosure-backup")
        self.assertEqual((schedule.func, schedule.schedule_type), ("disclosure.tasks.run_backup", Schedule.DAILY))
        self.assertEqual(schedule.next_run.astimezone(LONDON).hour, 2)
        with override_settings(BACKUP_HOUR=-1):
            tasks.ensure_schedules()
        self.assertFalse(Schedule.objects.filter(name="disclosure-backup").exists())

    def test_no_schedule_without_a_team_key(self):
        with override_settings(BACKUP_HOUR=2, TEAM_KEY_FINGERPRINT=""):
            tasks.ensure_schedules()
        self.assertFalse(Schedule.objects.filter(name="disclosure-backup").exists())

    def test_healthz_reports_the_newest_backups_age_and_degrades_past_26_hours(self):
        folder = Path(settings.BACKUP_DIR)
        self.addCleanup(lambda: [path.unlink() for path in folder.iterdir()])
        tasks.sweep()
        status, body = self.healthz()
        self.assertEqual((status, body["last_backup_hours_ago"]), (200, None), body)  # BACKUP_HOUR=-1: not watched
        with override_settings(BACKUP_HOUR=2):
            status, body = self.healthz()
            self.assertEqual((status, body["failing"]), (503, ["backup"]))
            self.assertEqual(body["problems"], ["no backup has been made yet"])
            (folder / backup.archive_name(timezone.now() - timedelta(hours=27))).write_bytes(b"made by cron")
            status, body = self.healthz()
            self.assertEqual((status, body["failing"], body["last_backup_hours_ago"]), (503, ["backup"], 27.0))
            self.assertEqual(body["problems"], ["the newest backup is 27 hours old"])
            (folder / backup.archive_name(timezone.now() - timedelta(hours=3))).write_bytes(b"made by cron")
            status, body = self.healthz()
            self.assertEqual((status, body["status"], body["last_backup_hours_ago"]), (200, "ok", 3.0), body)
        # Made from cron with no schedule: watched all the same once an archive exists.
        status, body = self.healthz()
        self.assertEqual(body["last_backup_hours_ago"], 3.0)

    def test_a_new_installation_is_not_failing_before_its_first_scheduled_backup(self):
        tasks.sweep()
        with override_settings(BACKUP_HOUR=2):
            tasks.ensure_schedules()  # as migrate does: the first run is tonight
            status, body = self.healthz()
            self.assertEqual((status, body["last_backup_hours_ago"]), (200, None), body)
            Schedule.objects.filter(name="disclosure-backup").update(task="a-task-id")  # it ran, and made nothing
            status, body = self.healthz()
            self.assertEqual((status, body["failing"]), (503, ["backup"]), body)

    def test_the_dashboard_shows_the_newest_backup(self):
        folder = Path(settings.BACKUP_DIR)
        self.addCleanup(lambda: [path.unlink() for path in folder.iterdir()])
        self.login(self.lead)
        with override_settings(BACKUP_HOUR=2):
            self.assertContains(self.client.get("/admin/metrics/"), "Newest backup: none yet")
            (folder / backup.archive_name(timezone.now() - timedelta(hours=5))).write_bytes(b"made by cron")
            self.assertContains(self.client.get("/admin/metrics/"), "(5\xa0hours ago)")


class BackupCheckTests(TestCase):
    def check_ids(self):
        return [message.id for message in checks.check_backups(None)]

    def test_retention_over_90_days_is_refused(self):
        with override_settings(BACKUP_RETENTION_DAYS=91):
            self.assertEqual(self.check_ids(), ["disclosure.E030"])
        with override_settings(BACKUP_RETENTION_DAYS=90):
            self.assertEqual(self.check_ids(), [])

    def test_an_hour_past_23_and_a_backup_key_not_in_the_keyring_are_refused(self):
        with override_settings(BACKUP_HOUR=24):
            self.assertEqual(self.check_ids(), ["disclosure.E031"])
        with override_settings(BACKUP_KEY_FINGERPRINT="0123456789ABCDEF0123456789ABCDEF01234567"):
            self.assertEqual(self.check_ids(), ["disclosure.E032"])


class SqliteImageTests(TestCase):
    def test_a_wal_mode_database_is_archived_as_an_image_that_opens_in_memory(self):
        """The portal's SQLite runs in WAL mode (the tests' in-memory database does not)."""
        with tempfile.TemporaryDirectory() as folder:
            source = sqlite3.connect(Path(folder, "portal.sqlite3"))
            source.execute("PRAGMA journal_mode=WAL")
            source.execute("CREATE TABLE report (title TEXT)")
            source.execute("INSERT INTO report VALUES ('Stored XSS')")
            source.commit()
            memory = sqlite3.connect(":memory:")
            source.backup(memory)
            raw = memory.serialize()
            self.assertEqual(raw[18:20], b"\x02\x02")  # the header says WAL
            with self.assertRaises(sqlite3.Error):  # as it was archived before: unreadable in memory
                broken = sqlite3.connect(":memory:")
                broken.deserialize(raw)
                broken.execute("SELECT COUNT(*) FROM report").fetchone()
            copy = backup.sqlite_load(raw)
            self.assertEqual(copy.execute("SELECT title FROM report").fetchall(), [("Stored XSS",)])
            source.close()
