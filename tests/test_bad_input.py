"""Bad input gets a clear message or a 4xx page, never a 500, and nothing is half-saved."""

from pathlib import Path
from unittest import skipIf

import time_machine
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import override_settings

from disclosure.models import Attachment, Report, TrackingCounter
from disclosure.storage import uses_object_storage
from disclosure.uploads import removed_on_failure, safe_filename
from tests.base import MONDAY_10AM, BaseTestCase, make_report, report_data, stored_names, upload


@time_machine.travel(MONDAY_10AM, tick=False)
class BadFormInputTests(BaseTestCase):

    def test_over_long_title(self):
        response = self.submit(report_data(title="x" * 201))
        self.assertRefused(response, "Ensure this value has at most 200 characters (it has 201).")

    def test_over_long_description(self):
        response = self.submit(report_data(description="x" * 50_001))
        self.assertRefused(response, "Ensure this value has at most 50000 characters (it has 50001).")

    def test_nul_byte(self):
        self.assertRefused(self.submit(report_data(description="before\x00after")), "Null characters are not allowed.")

    def test_control_characters_in_a_single_line_field(self):
        self.assertRefused(self.submit(report_data(title="bell\x07")), "control characters")

    def test_invalid_utf8(self):
        body = b"title=%FF%FEbad&description=fine"
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/report/", body, content_type="application/x-www-form-urlencoded")
        self.assertRefused(response, "not valid UTF-8")

    def test_invalid_email_address(self):
        self.assertRefused(self.submit(report_data(reporter_email="not-an-address")), "Enter a valid email address.")

    def test_credit_by_name_needs_a_name(self):
        response = self.submit(report_data(credit="name", credit_name="", reporter_name=""))
        self.assertRefused(response, "Tell us the name or handle to credit")

    def test_unknown_credit_choice(self):
        self.assertRefused(self.submit(report_data(credit="everyone")), "Select a valid choice.")

    @override_settings(MAX_ATTACHMENTS=2)
    def test_too_many_attachments(self):
        response = self.submit(files=[upload(f"f{i}.txt") for i in range(3)])
        self.assertRefused(response, "Attach at most 2 files (you sent 3).")
        self.assertEqual(stored_names(), [])

    def test_far_too_many_files_is_a_400_page(self):
        response = self.submit(files=[upload(f"f{i}.txt") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)])
        self.assertEqual(response.status_code, 400)
        self.assertFalse(Report.objects.exists())

    @override_settings(MAX_ATTACHMENT_BYTES=100)
    def test_attachment_too_large(self):
        response = self.submit(files=[upload("big.bin", b"x" * 101)])
        self.assertRefused(response, "big.bin is 101\xa0bytes; each file may be at most 100\xa0bytes.")

    @override_settings(MAX_ATTACHMENT_BYTES=100, MAX_ATTACHMENTS_TOTAL_BYTES=150)
    def test_attachments_too_large_together(self):
        response = self.submit(files=[upload("a.bin", b"x" * 80), upload("b.bin", b"x" * 80)])
        self.assertRefused(response, "The files add up to 160\xa0bytes; together they may be at most 150\xa0bytes.")

    def test_empty_attachment(self):
        self.assertRefused(self.submit(files=[upload("empty.txt", b"")]), "The submitted file is empty.")

    def test_request_body_over_the_limit_is_a_400(self):
        with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
            response = self.submit(report_data(description="x" * 5000))
        self.assertEqual(response.status_code, 400)
        self.assertFalse(Report.objects.exists())

    def test_get_only_pages_refuse_other_methods(self):
        self.assertEqual(self.client.put("/report/").status_code, 405)
        self.assertEqual(self.client.post("/policy/").status_code, 405)


@time_machine.travel(MONDAY_10AM, tick=False)
class HostileFileNameTests(BaseTestCase):
    def test_path_traversal_name_is_stored_under_a_random_name(self):
        self.submit(files=[upload("../../../etc/passwd", b"root:x:0:0")])
        attachment = Attachment.objects.get()
        self.assertEqual(attachment.original_name, "passwd")
        self.assertRegex(attachment.file.name, r"^attachments/\d{4}/\d{2}/[0-9a-f]{32}$")
        self.assertEqual(stored_names(), [attachment.file.name])

    @skipIf(uses_object_storage(), "a path on local disk: object storage has no folders to climb out of")
    def test_path_traversal_name_stays_inside_the_upload_folder(self):
        self.submit(files=[upload("../../../etc/passwd", b"root:x:0:0")])
        path = Path(Attachment.objects.get().file.path).resolve()
        self.assertTrue(path.is_relative_to(Path(settings.MEDIA_ROOT).resolve()))
        self.assertFalse(path.is_relative_to(Path(settings.BASE_DIR, "static").resolve()))

    def test_safe_filename(self):
        self.assertEqual(safe_filename("..\\..\\boot.ini"), "boot.ini")
        self.assertEqual(safe_filename("invoice\u202efdp.exe"), "invoicefdp.exe")
        self.assertEqual(safe_filename("a\x00b\r\n.txt"), "ab.txt")
        self.assertEqual(safe_filename("...hidden"), "hidden")
        self.assertEqual(safe_filename(""), "attachment")
        self.assertEqual(safe_filename("/"), "attachment")
        long = safe_filename("a" * 300 + ".tar.gz")
        self.assertEqual(len(long), 150)
        self.assertTrue(long.endswith(".gz"))

    def test_staff_download_uses_the_safe_name_as_an_attachment(self):
        report, _ = make_report(files=[upload("report\u202egpj.exe", b"MZ")])
        self.login(self.triager)
        response = self.client.get(f"/staff/attachments/{report.attachments.get().pk}/")
        self.assertEqual(response["Content-Type"], "application/octet-stream")
        self.assertEqual(response["Content-Disposition"], 'attachment; filename="reportgpj.exe"')

    def test_staff_download_needs_permission(self):
        report, _ = make_report(files=[upload()])
        url = f"/staff/attachments/{report.attachments.get().pk}/"
        self.assertEqual(self.client.get(url).status_code, 302)  # to the login page
        self.login(self.stranger)
        self.assertEqual(self.client.get(url).status_code, 302)
        staff_without_permission = self.stranger
        staff_without_permission.is_staff = True
        staff_without_permission.save()
        self.login(staff_without_permission)
        self.assertEqual(self.client.get(url).status_code, 403)

    @override_settings(STAFF_2FA_REQUIRED=True)
    def test_staff_download_needs_the_second_factor_too(self):
        report, _ = make_report(files=[upload()])
        url = f"/staff/attachments/{report.attachments.get().pk}/"
        self.login(self.triager, verified=False)  # a stolen password alone
        response = self.client.get(url)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith("/admin/2fa/"))
        self.login(self.triager)
        self.assertEqual(self.client.get(url).status_code, 200)


@time_machine.travel(MONDAY_10AM, tick=False)
class NothingHalfSavedTests(BaseTestCase):
    def test_invalid_fields_from_a_script_save_nothing(self):
        with self.assertRaises(ValidationError):
            make_report(files=[upload()], title="x" * 300)
        self.assertFalse(Report.objects.exists())
        self.assertFalse(Attachment.objects.exists())
        self.assertFalse(TrackingCounter.objects.exists())
        self.assertEqual(stored_names(), [])

    def test_files_of_a_rolled_back_transaction_are_removed(self):
        report, _ = make_report()
        with self.assertRaises(RuntimeError):
            with removed_on_failure() as stored, transaction.atomic():
                stored.append(Attachment.store(report, upload("x.txt", b"data")))
                self.assertEqual(len(stored_names()), 1)
                raise RuntimeError("something failed after the file was written")
        self.assertEqual(stored_names(), [])
        self.assertFalse(Attachment.objects.exists())
