"""Test settings: the project's settings (read from the environment as in production)
with the task queue in sync mode, fast password hashing and a private upload folder.

``TEST_OBJECT_STORAGE=s3`` runs the suite with every file in object storage instead of the
upload folder: a moto S3 server for the run, configured through the S3_* variables
(tests/s3.py: storage_for_the_run). Each test still gets storage of its own (tests/base.py)."""

import os
import tempfile
from urllib.parse import urlsplit

from tests.s3 import storage_for_the_run

TEST_OBJECT_STORAGE = os.environ.get("TEST_OBJECT_STORAGE", "").strip().lower()
with storage_for_the_run(TEST_OBJECT_STORAGE):
    from config.settings import *  # noqa: F403
    from config.settings import CACHES, Q_CLUSTER, REDIS_URL, STORAGES

# django-q2 reads its configuration once at import: sync mode must be set here. The run's
# queue has a name of its own, so a task another run left in a shared Redis is not its backlog.
Q_CLUSTER = {**Q_CLUSTER, "sync": True, "cluster_name": f"disclosure-test-{os.getpid()}"}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = tempfile.mkdtemp(prefix="disclosure-test-uploads-")
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
# Keep test runs apart from a developer's portal on a shared Redis: their own database
# number (tests clear the cache between tests) and a per-run key prefix.
CACHES = {**CACHES, "default": {**CACHES["default"], "KEY_PREFIX": f"test-{os.getpid()}"}}
if REDIS_URL:
    _url = urlsplit(REDIS_URL)
    CACHES["default"]["LOCATION"] = _url._replace(path="/15").geturl()
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
STATIC_ROOT = tempfile.mkdtemp(prefix="disclosure-test-static-")
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# A keyring of the test run's own; tests that need a team key generate one (tests/pgp_keys.py).
GNUPG_HOME = tempfile.mkdtemp(prefix="disclosure-test-gnupg-")
TEAM_KEY_FINGERPRINT = ""
TEAM_KEY_PASSPHRASE = ""
# Backups go to a folder of the run's own, unscheduled: tests that need the schedule or the
# /healthz backup check turn it on (an unscheduled portal without archives is not watched).
BACKUP_DIR = tempfile.mkdtemp(prefix="disclosure-test-backups-")
BACKUP_HOUR = -1
# Backups go to BACKUP_DIR whatever the run's file storage; tests of the bucket say so.
BACKUP_TARGET = "dir"
