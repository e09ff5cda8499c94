"""Files in object storage (S3_BUCKET): a real S3-compatible server (moto's, over HTTP, behind a
TCP proxy the tests can cut), never a mock of boto3.

Attachments are sealed, private objects under random names; downloads stream through the
portal's views; purging or deleting a report deletes its objects, and a deletion the store
refused is retried by the sweep; a store that cannot be reached gives the researcher the
form back with nothing half-saved, and /healthz says so."""

import os
from datetime import timedelta
from pathlib import Path
from unittest import skipUnless

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from disclosure import health, storage, tasks
from disclosure.models import Attachment, Report
from disclosure.storage import FileDeletion
from tests.base import BaseTestCase, make_report, report_data, stored_bytes, stored_names, upload
from tests.pgp_keys import TeamKeyMixin
from tests.s3 import OwnBucketMixin, client, moto_available, storages_for

PREFIX = "portal"


@skipUnless(moto_available(), "moto[server] is not installed (pip install -r requirements-dev.txt)")
class ObjectStorageTestCase(OwnBucketMixin, TeamKeyMixin, BaseTestCase):
    def setUp(self):
        super().setUp()
        self.enterContext(override_settings(STORAGES=storages_for(self.proxy_url, self.bucket, PREFIX),
                                            S3_BUCKET=self.bucket, S3_PREFIX=PREFIX))

    def objects(self) -> list[str]:
        return self.server.keys(self.bucket)

    def body(self, key: str) -> bytes:
        return self.server.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


class StoredObjectTests(ObjectStorageTestCase):
    def test_attachments_are_sealed_private_objects_under_random_names(self):
        report, _ = make_report(files=[upload("poc.py", b"print('exploit')")], now=timezone.now())
        [key] = self.objects()
        self.assertRegex(key, rf"^{PREFIX}/attachments/\d{{4}}/\d{{2}}/[0-9a-f]{{32}}$")
        self.assertEqual(report.attachments.get().file.name, key.removeprefix(f"{PREFIX}/"))
        self.assertNotIn(b"exploit", self.body(key))  # sealed to the team key
        grants = self.server.client.get_object_acl(Bucket=self.bucket, Key=key)["Grants"]
        self.assertEqual([grant["Permission"] for grant in grants], ["FULL_CONTROL"])  # the owner alone
        self.assertNotIn("URI", grants[0]["Grantee"])  # no AllUsers / AuthenticatedUsers grant

    def test_downloads_stream_the_plaintext_through_the_portal(self):
        content = bytes(range(256)) * 12_000  # 3 MB: spooled to a temporary file, not memory
        report, token = make_report(files=[upload("dump.bin", content, "application/octet-stream")],
                                    now=timezone.now())
        attachment = report.attachments.get()
        response = self.client.get(f"/status/{token}/files/{attachment.pk}/")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.streaming)
        self.assertEqual(response["Content-Disposition"], 'attachment; filename="dump.bin"')
        self.assertEqual(b"".join(response.streaming_content), content)
        self.login(self.triager)
        response = self.client.get(f"/staff/attachments/{attachment.pk}/", secure=True)
        self.assertEqual(b"".join(response.streaming_content), content)
        self.assertNotIn("Location", response)  # never a redirect to the store

    def test_a_reporter_message_with_a_file_and_inbound_mail_go_to_the_store_too(self):
        report, token = make_report(now=timezone.now())
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/status/{token}/", {"body": "logs", "attachments": [upload("log.txt")]})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(len(self.objects()), 1)

        from disclosure.inbound import file as inbound_file
        raw = (b"From: Bo <bo@researcher.example>\r\nTo: security@security.example.com\r\nSubject: SQLi\r\n"
               b"Message-ID: <m1@researcher.example>\r\n\r\nThe search box is injectable.\r\n")
        with self.captureOnCommitCallbacks(execute=True):
            row = inbound_file.take(raw, arrived_at=timezone.now(), source="pipe")
        self.assertEqual(row.state, "done")
        emailed = Report.objects.get(channel="email")
        self.assertEqual(emailed.attachments.get().read_plain()[0], raw)  # kept as original-message.eml, sealed
        self.assertEqual(len(self.objects()), 2)  # the pending raw copy was deleted once filed
        self.assertFalse(FileDeletion.objects.exists())


class DeletionTests(ObjectStorageTestCase):
    def finished_report(self):
        report, _ = make_report(files=[upload(), upload("b.txt", b"second")], now=timezone.now())
        self.assertEqual(len(self.objects()), 2)
        Report.objects.filter(pk=report.pk).update(status="resolved")
        return Report.objects.get(pk=report.pk)

    def test_purging_a_report_deletes_its_objects(self):
        report = self.finished_report()
        with self.captureOnCommitCallbacks(execute=True):
            report.purge()
        self.assertEqual(self.objects(), [])
        self.assertFalse(FileDeletion.objects.exists())

    def test_deleting_a_report_deletes_its_objects(self):
        report = self.finished_report()
        with self.captureOnCommitCallbacks(execute=True):
            report.delete()
        self.assertEqual(self.objects(), [])

    def test_a_deletion_rolled_back_keeps_the_object(self):
        report = self.finished_report()
        with self.captureOnCommitCallbacks(execute=True):
            try:
                with transaction.atomic():
                    report.attachments.all().delete()
                    raise RuntimeError("something later failed")
            except RuntimeError:
                pass
        self.assertEqual(len(self.objects()), 2)
        self.assertEqual(Attachment.objects.count(), 2)
        self.assertFalse(FileDeletion.objects.exists())

    def test_a_deletion_the_store_refused_is_recorded_and_retried_by_the_sweep(self):
        report = self.finished_report()
        self.proxy.cut()
        with self.assertLogs("disclosure.storage", "WARNING"), self.captureOnCommitCallbacks(execute=True):
            report.purge()
        self.assertFalse(Attachment.objects.exists())
        rows = list(FileDeletion.objects.all())
        self.assertEqual([(row.attempts, bool(row.last_error)) for row in rows], [(1, True), (1, True)])
        self.proxy.restore()
        self.assertEqual(len(self.objects()), 2)  # still there: nothing was lost track of
        tasks.sweep(timezone.now())  # not due yet: backoff
        self.assertEqual(len(self.objects()), 2)
        result = tasks.sweep(timezone.now() + timedelta(minutes=2))
        self.assertEqual(result["files_deleted"], 2)
        self.assertEqual(self.objects(), [])
        self.assertFalse(FileDeletion.objects.exists())

    def test_an_unsaved_file_the_store_refused_to_delete_is_retried(self):
        name = default_storage.save("attachments/orphan", ContentFile(b"written for a submission that failed"))
        self.proxy.cut()
        with self.assertLogs("disclosure.storage", "WARNING"):
            storage.discard(name)
        self.proxy.restore()
        self.assertEqual(FileDeletion.objects.get().name, name)
        tasks.sweep(timezone.now() + timedelta(minutes=2))
        self.assertEqual(self.objects(), [])


class UnreachableStoreTests(ObjectStorageTestCase):
    def test_a_submission_comes_back_with_what_was_typed_and_nothing_is_half_saved(self):
        self.proxy.cut()
        data = report_data()
        with self.assertLogs("disclosure.health", "ERROR") as logged:
            response = self.submit(data, files=[upload(), upload("second.txt", b"more")])
        self.assertContains(response, "Your report could not be saved", status_code=503)
        self.assertContains(response, f'value="{data["title"]}"', status_code=503)
        self.assertEqual(response["Retry-After"], "300")
        self.assertRegex(logged.output[0], r"(EndpointConnection|ConnectionClosed)Error")
        self.assertFalse(Report.objects.exists())
        self.assertFalse(Attachment.objects.exists())
        self.proxy.restore()
        self.assertEqual(self.objects(), [])
        # Sent again once the store is back, it is stored.
        response = self.submit(data, files=[upload()])
        self.assertEqual(response.status_code, 302)
        self.assertEqual(len(self.objects()), 1)

    def test_a_download_says_try_again_later(self):
        report, token = make_report(files=[upload()], now=timezone.now())
        self.proxy.cut()
        with self.assertLogs("disclosure.views", "ERROR"):
            response = self.client.get(f"/status/{token}/files/{report.attachments.get().pk}/")
        self.assertContains(response, "cannot be read right now", status_code=503)

    def test_healthz_reports_the_store(self):
        tasks.sweep()
        body = self.client.get("/healthz").json()
        self.assertEqual(body["file_storage"], "ok")
        self.proxy.cut()
        health.forget()  # it is asked at most once a minute per process
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["file_storage"], "unreachable")
        self.assertIn("file_storage", response.json()["failing"])
        self.proxy.restore()
        self.assertEqual(self.client.get("/healthz").json()["file_storage"], "unreachable")  # remembered a minute
        health.forget()
        self.assertEqual(self.client.get("/healthz").json()["file_storage"], "ok")


class SuiteStorageTests(BaseTestCase):
    """The whole suite runs on the storage TEST_OBJECT_STORAGE names (tests/settings.py), each
    test on storage of its own."""

    def test_files_go_where_test_object_storage_says_and_each_test_starts_empty(self):
        self.assertEqual(stored_names(), [])
        report, _ = make_report(files=[upload("poc.txt", b"proof of concept")], now=timezone.now())
        name = report.attachments.get().file.name
        self.assertEqual(stored_names(), [name])
        if settings.TEST_OBJECT_STORAGE == "s3":
            self.assertTrue(storage.uses_object_storage())
            self.assertRegex(settings.S3_PREFIX, r"^test-[0-9a-f]{16}$")  # this test's own prefix
            stored = client(settings.S3_ENDPOINT_URL).get_object(Bucket=settings.S3_BUCKET,
                                                                 Key=f"{settings.S3_PREFIX}/{name}")
            self.assertEqual(stored["Body"].read(), stored_bytes(name))
            # Set while the settings were read, not left for the processes tests start.
            self.assertNotEqual(os.environ.get("S3_BUCKET"), settings.S3_BUCKET)
        else:
            self.assertFalse(storage.uses_object_storage())
            self.assertEqual(Path(settings.MEDIA_ROOT, name).read_bytes(), stored_bytes(name))
