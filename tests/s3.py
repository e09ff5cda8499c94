"""A real S3-compatible server for tests: moto's standalone server (``moto[server]``), started
as a process of its own on a free loopback port. Nothing in the test process is mocked:
the portal talks to it over HTTP through django-storages and boto3, as it would to AWS S3,
MinIO or R2."""

import atexit
import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import boto3
from botocore.config import Config

from tests.faults import free_port, start_group, stop_group

ACCESS_KEY, SECRET_KEY, REGION = "test-access-key", "test-secret-key", "eu-west-1"


def moto_available() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


class S3Server:
    """``moto_server`` on 127.0.0.1:<free port>; ``stop()`` kills its process group."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = start_group([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = client(self.url)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)

    def create_bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def stop(self):
        stop_group(self.process)


class OwnBucketMixin:
    """A test case with a class-wide S3 server and a bucket of each test's own, reached
    through a ``TcpProxy`` the test can cut (``self.proxy``); the portal's storage settings
    are the test's to set (``storages_for(self.proxy_url, self.bucket, prefix)``)."""

    @classmethod
    def setUpClass(cls):
        cls.server = S3Server()
        cls.addClassCleanup(cls.server.stop)
        super().setUpClass()

    def setUp(self):
        from disclosure import health
        from tests.faults import TcpProxy

        super().setUp()
        self.bucket = self.server.create_bucket(f"portal-{uuid.uuid4().hex[:12]}")
        self.proxy = TcpProxy(("127.0.0.1", self.server.port))
        self.addCleanup(self.proxy.close)
        self.proxy_url = f"http://127.0.0.1:{self.proxy.port}"
        health.forget()  # the file-storage probe's memo belongs to the storage before this test's
        self.addCleanup(health.forget)


def client(url: str):
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name=REGION, config=Config(retries={"max_attempts": 1}))


def env_for(url: str, bucket: str, prefix: str = "") -> dict:
    """The portal's settings for this server, as environment variables."""
    return {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": url, "S3_REGION": REGION, "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY, "S3_PREFIX": prefix, "S3_ADDRESSING_STYLE": "path"}


def storages_for(url: str, bucket: str, prefix: str = "") -> dict:
    """``STORAGES`` as config/settings.py builds it from ``env_for(...)``."""
    return {"default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": bucket, "endpoint_url": url, "region_name": REGION, "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY, "location": prefix, "default_acl": None, "querystring_auth": True,
        "file_overwrite": False, "max_memory_size": 2 * 1024 * 1024,
        "client_config": Config(connect_timeout=2, read_timeout=10, s3={"addressing_style": "path"},
                                retries={"max_attempts": 1}),
    }}, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@contextmanager
def storage_for_the_run(mode: str):
    """``TEST_OBJECT_STORAGE`` read by tests/settings.py: ``s3`` starts one S3 server for the
    whole run (stopped when the run ends) with a bucket of the run's own, and sets the S3_*
    variables while the project's settings are read, so config/settings.py builds ``STORAGES``
    as in production; they are unset again afterwards, so the processes tests start (fresh
    installations, workers, hosts) choose their storage themselves. Unset or ``local``: the
    upload folder on local disk, the embedded default."""
    if mode in ("", "local"):
        yield
        return
    if mode != "s3":
        raise RuntimeError(f"TEST_OBJECT_STORAGE must be s3, local or unset, not {mode!r}")
    if not moto_available():
        raise RuntimeError("TEST_OBJECT_STORAGE=s3 needs moto[server] (pip install -r requirements-dev.txt)")
    server = S3Server()
    atexit.register(server.stop)
    env = env_for(server.url, server.create_bucket(f"portal-test-run-{uuid.uuid4().hex[:12]}"))
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def gpg_available() -> bool:
    return shutil.which("gpg") is not None
