"""The restore drill, as an operator runs it: real commands in processes of their own.

A portal host (gunicorn, production settings, its own DATA_DIR, and a GNUPG_HOME filled only
from TEAM_KEY_FILE) takes a report with an attachment over HTTP. We note what its status page,
what-you-sent page (decrypted) and the attachment download (byte for byte) show, and its
deadlines and django-q2 schedules (``manage.py shell``). Then ``manage.py backup``; then the
host is lost: the database dropped (SQLite: its file deleted), the files emptied, DATA_DIR and
GNUPG_HOME deleted. ``manage.py restore ARCHIVE`` on the empty host (its key comes back from
TEAM_KEY_FILE alone), gunicorn again, and everything must read as before. ``restore --verify``
passes on the archive and exits non-zero with RESTORE VERIFICATION FAILED on a copy with one
flipped byte.

Each pass of ``.ci/run`` runs the drill of its database: on SQLite, local disk and BACKUP_DIR;
on PostgreSQL (a database of its own, created and dropped here), files and backups in an
S3-compatible bucket (moto's server), BACKUP_TARGET left to its default, as production runs.
"""

import json
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from unittest import skipUnless

from django.db import connection
from django.test import SimpleTestCase

from tests.base import STATUS_URL, fresh_env
from tests.faults import free_port
from tests.hosts import HOST, Host, PgDatabase, report_form, team_key_file
from tests.s3 import S3Server, env_for, moto_available

TEAM = "security@security.example.com"
FILES, BACKUPS = "files", "backups"
POC = bytes(range(256)) * 300 + b"the end of the proof of concept"

# Everything that must read the same after the restore, printed as JSON by ``manage.py shell``.
STATE = """
import json
from django_q.models import Schedule
from disclosure.models import Report
reports = list(Report.objects.order_by("pk").values(
    "tracking_id", "status", "received_at", "ack_due_at", "assess_due_at", "due_at", "ack_next_alert_at",
    "assess_next_alert_at"))
schedules = list(Schedule.objects.order_by("name").values("name", "func", "schedule_type", "minutes", "repeats",
                                                         "next_run"))
print(json.dumps({"reports": reports, "schedules": schedules}, default=str))
"""
# What changes from one rendering to the next: the CSRF token and the CSP nonce.
PER_RESPONSE = re.compile(r'(name="csrfmiddlewaretoken" value|nonce)="[^"]*"')


class RestoreDrill:
    """The drill; a subclass says where the database, the files and the backups live."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = Path(tempfile.mkdtemp(prefix="restore-drill-"))
        cls.addClassCleanup(shutil.rmtree, cls.root, ignore_errors=True)
        cls.key_file, fingerprint = team_key_file(cls.root, TEAM)
        env = {key: value for key, value in fresh_env(str(cls.root)).items()
               if not key.startswith(("S3_", "BACKUP_", "TEAM_KEY_", "UPLOAD_DIR"))}
        cls.host = Host("portal", cls.root, {
            **env, "DJANGO_SETTINGS_MODULE": "tests.proof_settings", "PROOF_STATIC_ROOT": str(cls.root / "static"),
            "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "SITE_URL": f"https://{HOST}",
            "BEHIND_PROXY": "true", "TRUSTED_PROXY_COUNT": "1", "LOG_LEVEL": "WARNING", "MIN_FORM_SECONDS": "0",
            "MAILER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port()), "SMTP_STARTTLS": "false",
            "SECURITY_TEAM_EMAIL": TEAM, "TEAM_KEY_FILE": str(cls.key_file), "TEAM_KEY_FINGERPRINT": fingerprint,
            **cls.storage_env()})
        cls.addClassCleanup(cls.host.stop)
        cls.host.manage("migrate", "--no-input")  # the release step; migrate makes the schedules
        cls.host.manage("collectstatic", "--no-input")
        cls.host.start(worker=False)  # no worker: the schedules stay as migrate made them
        cls.before = cls.record_portal()
        output = cls.host.manage("backup")
        cls.archive = re.search(r"Backup written to (\S+)", output).group(1)
        cls.host.stop()

    @classmethod
    def storage_env(cls) -> dict:
        raise NotImplementedError

    # --- What an operator and a researcher see ------------------------------------------------
    @classmethod
    def record_portal(cls) -> dict:
        response = cls.host.post("/report/", report_form("Reflected XSS in search", "ada@researcher.example"),
                                 files=[("attachments", ("poc.bin", POC, "application/octet-stream"))])
        assert response.status_code == 302, response.text[:500]
        received = cls.host.get("/report/received/", cookies=response.cookies.get_dict())
        cls.token = STATUS_URL.search(received.text).group(1)
        return cls.read_portal()

    @classmethod
    def read_portal(cls) -> dict:
        status = cls.host.get(f"/status/{cls.token}/")
        submitted = cls.host.get(f"/status/{cls.token}/submitted/")
        assert (status.status_code, submitted.status_code) == (200, 200), (status.text[:300], submitted.text[:300])
        [download] = re.findall(rf'href="(/status/{cls.token}/files/\d+/)"', submitted.text)
        attachment = cls.host.get(download)
        assert attachment.status_code == 200, attachment.text[:300]
        return {"status_page": PER_RESPONSE.sub("", status.text), "submitted": PER_RESPONSE.sub("", submitted.text),
                "attachment": attachment.content, "state": json.loads(cls.host.shell(STATE))}

    # --- Losing the host, and the drill ----------------------------------------------------------
    def lose_the_host(self):
        """The database and the files gone, and a new machine: empty DATA_DIR and GNUPG_HOME."""
        raise NotImplementedError

    def flipped_copy(self) -> str:
        """A copy of the archive with one byte flipped, as ``restore`` takes it."""
        raise NotImplementedError

    def test_1_backup_lose_the_host_restore_serves_the_same_portal(self):
        self.assertIn("Reflected XSS in search: the description, to be sealed at rest.", self.before["submitted"])
        self.assertEqual(self.before["attachment"], POC)
        self.assertIn("disclosure-sweep", [row["name"] for row in self.before["state"]["schedules"]])
        self.assertIn(self.archive, self.host.manage("backup", "--list"))
        self.lose_the_host()
        output = self.host.manage("restore", self.archive)
        self.assertIn("System checks passed", output)
        self.host.start(worker=False)
        after = self.read_portal()
        self.assertEqual(after["state"], self.before["state"])  # deadlines and schedules
        self.assertEqual(after["attachment"], POC)  # decrypted, byte for byte
        self.assertEqual(after["submitted"], self.before["submitted"])
        self.assertEqual(after["status_page"], self.before["status_page"])
        self.assertEqual(self.host.get("/healthz").json()["gpg"], "ok")
        self.host.stop()

    def test_2_verify_passes_and_fails_loudly_on_one_flipped_byte(self):
        self.assertIn("Verification passed", self.host.manage("restore", "--verify", self.archive))
        result = self.host.run("restore", "--verify", self.flipped_copy())
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("RESTORE VERIFICATION FAILED", result.stderr)
        self.assertIn("is damaged", result.stderr)


@skipUnless(connection.vendor == "sqlite", "the SQLite drill runs in the SQLite pass (the PostgreSQL one in the other)")
class SqliteRestoreDrillTests(RestoreDrill, SimpleTestCase):
    @classmethod
    def storage_env(cls) -> dict:
        return {"BACKUP_DIR": str(cls.root / "backups")}  # off the host: copied elsewhere

    def lose_the_host(self):
        self.host.wipe()  # the SQLite file, the uploads and the keyring
        self.assertFalse(self.host.data_dir.exists())

    def flipped_copy(self) -> str:
        data = bytearray(Path(self.archive).read_bytes())
        data[len(data) // 2] ^= 0x01
        copy = self.root / "flipped.tar.gpg"
        copy.write_bytes(bytes(data))
        return str(copy)


def _pg_missing() -> str:
    if connection.vendor != "postgresql":
        return "the PostgreSQL drill runs in the PostgreSQL pass (DATABASE_URL=postgres://...)"
    if not moto_available():
        return "needs moto[server] (pip install -r requirements-dev.txt)"
    return ""


@skipUnless(not _pg_missing(), _pg_missing())
class PostgresBucketRestoreDrillTests(RestoreDrill, SimpleTestCase):
    @classmethod
    def storage_env(cls) -> dict:
        import os

        cls.database = PgDatabase(f"restore_drill_{os.getpid()}")
        cls.database.create()
        cls.addClassCleanup(cls.database.drop)
        cls.s3 = S3Server()
        cls.addClassCleanup(cls.s3.stop)
        cls.bucket = cls.s3.create_bucket("portal-drill")
        return {"DATABASE_URL": cls.database.url, **env_for(cls.s3.url, cls.bucket, FILES)}  # backups: the bucket

    def lose_the_host(self):
        self.assertTrue(self.archive.startswith(f"s3://{self.bucket}/{BACKUPS}/portal-backup-"), self.archive)
        self.database.create()  # dropped, and created empty again
        files = [key for key in self.s3.keys(self.bucket) if key.startswith(f"{FILES}/")]
        self.assertEqual(len(files), 1)
        for key in files:
            self.s3.client.delete_object(Bucket=self.bucket, Key=key)
        self.host.wipe()
        self.assertEqual(self.s3.keys(self.bucket), [self.archive.split("/", 3)[3]])  # the archive alone

    def flipped_copy(self) -> str:
        data = bytearray(self.s3.client.get_object(Bucket=self.bucket, Key=self.archive.split("/", 3)[3])["Body"]
                         .read())
        data[len(data) // 2] ^= 0x01
        key = f"{BACKUPS}/flipped-copy.tar.gpg"  # not an archive's name: never counted as a backup
        self.s3.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))
        return f"s3://{self.bucket}/{key}"
