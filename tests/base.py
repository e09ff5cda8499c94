"""Shared test fixtures: named personas, a report factory and email helpers."""

import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core import mail
from django.core.cache import caches
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import TestCase, override_settings

from disclosure import health, pgp, ratelimits, securitytxt
from disclosure.models import Attachment, Report
from disclosure.storage import uses_object_storage
from tests.faults import free_port

# A fixed, ordinary moment: Monday 30 November 2026, 10:00 UTC.
MONDAY_10AM = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")


def end_of(y, m, d, tz=LONDON):
    """The end of a day, as deadlines fall (23:59:59 local time)."""
    return datetime(y, m, d, 23, 59, 59, tzinfo=tz)

STATUS_URL = re.compile(r"https?://[^\s\"'<>]+/status/([A-Za-z0-9_-]{20,100})/")


def report_data(**overrides) -> dict:
    data = {
        "title": "Stored XSS in profile page",
        "description": "The *bio* field renders `<script>` tags.\n\n1. Edit profile\n2. Save",
        "asset": "https://app.example.com/profile",
        "vulnerability_type": "CWE-79",
        "steps_to_reproduce": "1. Log in\n2. Put <script>alert(1)</script> in bio",
        "impact": "Session theft",
        "reporter_name": "Ada Researcher",
        "reporter_email": "ada@researcher.example",
        "credit": "name",
        "credit_name": "ada",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def upload(name="poc.txt", content=b"proof of concept", content_type="text/plain"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def make_report(now=MONDAY_10AM, files=(), **overrides) -> tuple[Report, str]:
    fields = report_data(**overrides)
    return Report.submit(fields=fields, files=files, now=now)


def run_at_once(work, times: int = 2) -> list:
    """Call ``work`` in ``times`` threads released together (each with its own database
    connection, closed afterwards); returns their results, or raises the first error."""
    barrier, results, errors = threading.Barrier(times), [], []

    def run():
        try:
            barrier.wait()
            results.append(work())
        except Exception as exc:  # noqa: BLE001 - raised below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def fresh_env(data_dir, **env) -> dict:
    """This environment as on a fresh machine: settings from ``env`` alone (production
    unless it says DEBUG), and a ``DATA_DIR`` not yet created in ``data_dir``."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DEBUG", "SECRET_KEY", "SITE_URL", "MAILER", "DATA_DIR", "DATABASE_URL", "REDIS_URL")
             and not k.startswith("RATELIMIT_")}
    return {**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "DATA_DIR": f"{data_dir}/not-yet-created", **env}


def run_fresh(*args, **env) -> subprocess.CompletedProcess:
    """Run ``python *args`` (default: ``manage.py check --deploy``) in ``fresh_env``."""
    with tempfile.TemporaryDirectory() as data_dir:
        return subprocess.run([sys.executable, *(args or ("manage.py", "check", "--deploy"))],
                              cwd=settings.BASE_DIR, env=fresh_env(data_dir, **env),
                              capture_output=True, text=True, timeout=120)


def without_rate_limit_store(queries) -> list[str]:
    """The SQL of captured ``queries`` without the rate-limit counter table's statements
    (with the savepoints that wrap them inside a test's transaction)."""
    from disclosure.ratelimit_store import RateLimitCounter

    sql = [query["sql"] for query in queries]
    table = RateLimitCounter._meta.db_table
    keep = []
    for index, statement in enumerate(sql):
        neighbours = sql[max(index - 1, 0):index + 2]
        wraps_store = statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")) and any(
            table in other for other in neighbours)
        if table not in statement and not wraps_store:
            keep.append(statement)
    return keep


def clear_cache(alias: str, config: dict) -> None:
    """Empty a cache for the next test. Redis is shared (other test runs on this machine use
    the same database number): only this run's keys (its ``KEY_PREFIX``) are deleted, never
    the whole database, which Django's ``clear()`` would flush."""
    if not config["BACKEND"].endswith("RedisCache"):
        caches[alias].clear()
        return
    import redis

    client = redis.Redis.from_url(config["LOCATION"])
    try:
        keys = list(client.scan_iter(match=f"{config.get('KEY_PREFIX', '')}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# --- Stored files, through the storage API (local disk or object storage alike) ---------------
def _with_default_storage(**options) -> dict:
    """``STORAGES`` with the default storage's options changed."""
    default = settings.STORAGES["default"]
    return {**settings.STORAGES, "default": {**default, "OPTIONS": {**default.get("OPTIONS", {}), **options}}}


def own_storage(test) -> None:
    """Give ``test`` file storage of its own, emptied afterwards: a fresh upload folder on
    local disk, or a fresh prefix in the run's bucket on object storage (TEST_OBJECT_STORAGE)."""
    if not uses_object_storage():
        upload_dir = tempfile.mkdtemp(prefix="disclosure-test-uploads-")
        test.addCleanup(shutil.rmtree, upload_dir, ignore_errors=True)
        test.enterContext(override_settings(MEDIA_ROOT=upload_dir))
        return
    from storages.backends.s3 import S3Storage

    prefix = posixpath.join(settings.S3_PREFIX, f"test-{uuid.uuid4().hex[:16]}")
    own = _with_default_storage(location=prefix)
    test.addCleanup(lambda: S3Storage(**own["default"]["OPTIONS"]).bucket.objects.filter(Prefix=f"{prefix}/").delete())
    test.enterContext(override_settings(STORAGES=own, S3_PREFIX=prefix))


def stored_names(path: str = "") -> list[str]:
    """The name of every file in the default storage (under ``path``), sorted."""
    store = storages["default"]
    try:
        directories, files = store.listdir(path)
    except FileNotFoundError:  # an upload folder nothing was stored in yet
        return []
    names = [posixpath.join(path, name) for name in files]
    for directory in directories:
        names += stored_names(posixpath.join(path, directory))
    return sorted(names)


def stored_bytes(file) -> bytes:
    """What the storage holds for ``file`` (a model's file field, or a name in the storage)."""
    with storages["default"].open(getattr(file, "name", file), "rb") as handle:
        return handle.read()


def is_stored(file) -> bool:
    return storages["default"].exists(getattr(file, "name", file))


@contextmanager
def storage_fails():
    """Every read and write of a file fails while inside: on local disk the upload folder
    cannot be created (a file is in its way); on object storage the endpoint is a port
    where nothing listens."""
    if uses_object_storage():
        with override_settings(STORAGES=_with_default_storage(endpoint_url=f"http://127.0.0.1:{free_port()}")):
            yield
        return
    with tempfile.TemporaryDirectory(prefix="disclosure-test-blocked-") as folder:
        blocker = Path(folder, "not-a-folder")
        blocker.write_text("a file where the upload folder should be")
        with override_settings(MEDIA_ROOT=blocker / "uploads"):
            yield


def start_afresh(test) -> None:
    """What a test must not inherit from the one before: the caches (rate-limit counters),
    what this process remembers (the keyring's facts, the served security.txt, health
    probes, rate-limit store failures), and
    stored files (each test has storage of its own, emptied afterwards: ``own_storage``)."""
    for alias, config in settings.CACHES.items():
        clear_cache(alias, config)
    pgp.forget()
    securitytxt.forget()
    health.forget()
    ratelimits.forget()
    own_storage(test)


class BaseTestCase(TestCase):
    """Personas: a triager and a lead (staff), an auditor, and a stranger (no access)."""

    @classmethod
    def setUpTestData(cls):
        view = Permission.objects.filter(content_type__app_label="disclosure", codename__startswith="view_")
        change = Permission.objects.filter(content_type__app_label="disclosure", codename__startswith="change_")
        cls.triager = User.objects.create_user("tess", "tess@example.com", "triager-password-1", is_staff=True)
        cls.triager.user_permissions.set([*view, *change])
        cls.lead = User.objects.create_user("leo", "leo@example.com", "lead-password-1", is_staff=True,
                                            is_superuser=True)
        cls.auditor = User.objects.create_user("aud", "aud@example.com", "auditor-password-1", is_staff=True)
        cls.auditor.user_permissions.set(view)
        cls.stranger = User.objects.create_user("sam", "sam@example.com", "stranger-password-1")

    def setUp(self):
        start_afresh(self)

    def assertRefused(self, response, message):
        """A form sent back with ``message`` (400), and nothing saved: no report, no file."""
        self.assertContains(response, message, status_code=400)
        self.assertFalse(Report.objects.exists())
        self.assertFalse(Attachment.objects.exists())

    def login(self, user, *, verified=True):
        """Log in as a persona; staff also pass the second factor unless ``verified=False``."""
        self.client.force_login(user)
        if verified and user.is_staff:
            from django_otp.plugins.otp_totp.models import TOTPDevice

            device, _ = TOTPDevice.objects.get_or_create(user=user, defaults={"name": "test", "confirmed": True})
            session = self.client.session
            session["otp_device_id"] = device.persistent_id
            session.save()

    def blank_form_values(self) -> dict:
        """The hidden per-visit values of a freshly shown report form."""
        html = self.client.get("/report/").content.decode()
        return {name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1)
                for name in ("submission_id", "shown_at", "csrfmiddlewaretoken")}

    def submit(self, data=None, files=None, *, follow=False, execute=True, **extra):
        """POST the public form as a browser would; queued tasks run when it commits."""
        payload = dict(data if data is not None else report_data())
        if files:
            payload["attachments"] = files
        with self.captureOnCommitCallbacks(execute=execute):
            return self.client.post("/report/", payload, follow=follow, **extra)

    def emails_to(self, address):
        return [m for m in mail.outbox if address in m.to]

    @staticmethod
    def html_of(message) -> str:
        return next(content for content, mimetype in message.alternatives if mimetype == "text/html")

    @staticmethod
    def status_token_in(text: str) -> str:
        match = STATUS_URL.search(text)
        assert match, f"no status link in:\n{text}"
        return match.group(1)
