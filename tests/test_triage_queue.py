"""The triage queue: roles, two factors, CVSS, export, duplicates and a list that stays fast."""

import csv
import io
import json
from datetime import timedelta

import time_machine
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from disclosure.duplicates import likely_duplicates
from disclosure.models import Report, Status, TransitionError
from disclosure.severity import score_vector
from tests.base import MONDAY_10AM, BaseTestCase, make_report


def member(name, group):
    user = User.objects.create_user(name, f"{name}@example.com", "a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@time_machine.travel(MONDAY_10AM, tick=False)
class RolesTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.report, _ = make_report()
        self.change = f"/admin/disclosure/report/{self.report.pk}/change/"

    def export(self, user, action="export_json"):
        self.login(user)
        return self.client.post("/admin/disclosure/report/", {"action": action, "_selected_action": [self.report.pk]})

    def test_the_three_groups_exist(self):
        self.assertEqual(sorted(Group.objects.values_list("name", flat=True)), ["Auditor", "Lead", "Triager"])

    def test_triager_works_reports_but_cannot_delete_or_export(self):
        triager = member("tina", "Triager")
        self.login(triager)
        self.assertContains(self.client.get(self.change), "/act/acknowledge/")
        self.client.post(f"/admin/disclosure/report/{self.report.pk}/act/acknowledge/")
        self.assertEqual(Report.objects.get().status, Status.ACKNOWLEDGED)
        self.assertEqual(self.client.get(f"/admin/disclosure/report/{self.report.pk}/delete/").status_code, 403)
        response = self.export(triager)
        self.assertNotEqual(response.get("Content-Type"), "application/json")
        self.assertNotContains(self.client.get("/admin/disclosure/report/"), "export_json")

    def test_auditor_reads_but_changes_nothing(self):
        auditor = member("audrey", "Auditor")
        self.login(auditor)
        page = self.client.get(self.change)
        self.assertContains(page, "Stored XSS in profile page")
        self.assertNotContains(page, "/act/")
        self.assertNotContains(page, 'name="_save"')
        self.assertEqual(self.client.post(f"/admin/disclosure/report/{self.report.pk}/act/acknowledge/").status_code,
                         403)
        self.client.post(self.change, {"cwe": "CWE-79"})
        self.assertEqual(Report.objects.get().cwe, "")
        self.assertEqual(Report.objects.get().status, Status.NEW)

    def test_lead_deletes_and_exports(self):
        lead = member("lena", "Lead")
        response = self.export(lead)
        self.assertEqual(response["Content-Type"], "application/json")
        [exported] = json.loads(response.content)
        self.assertEqual(exported["tracking_id"], "VDP-2026-0001")
        self.assertEqual(exported["timeline"][0]["kind"], "received")
        rows = list(csv.reader(io.StringIO(self.export(lead, "export_csv").content.decode())))
        self.assertEqual(rows[0][:3], ["tracking_id", "title", "status"])
        self.assertEqual(rows[1][:3], ["VDP-2026-0001", "Stored XSS in profile page", "new"])
        self.assertEqual(self.client.get(f"/admin/disclosure/report/{self.report.pk}/delete/").status_code, 200)


@override_settings(STAFF_2FA_REQUIRED=True)
class TwoFactorTests(BaseTestCase):
    def test_staff_without_a_device_enrol_then_reach_the_admin(self):
        self.login(self.triager, verified=False)
        response = self.client.get("/admin/disclosure/report/")
        self.assertRedirects(response, "/admin/2fa/?next=/admin/disclosure/report/", fetch_redirect_response=False)
        page = self.client.get(response["Location"])
        self.assertContains(page, "Set up two-factor authentication")
        self.assertContains(page, 'src="data:image/svg+xml;base64,')
        device = TOTPDevice.objects.get(user=self.triager)
        self.assertFalse(device.confirmed)
        wrong = self.client.post("/admin/2fa/", {"token": "000000", "next": "/admin/disclosure/report/"})
        self.assertContains(wrong, "That code is not valid", status_code=400)
        device.refresh_from_db()
        device.throttling_failure_count = 0
        device.throttling_failure_timestamp = None
        device.save()
        code = f"{totp(device.bin_key):06d}"
        done = self.client.post("/admin/2fa/", {"token": code, "next": "/admin/disclosure/report/"})
        self.assertRedirects(done, "/admin/disclosure/report/", fetch_redirect_response=False)
        self.assertTrue(TOTPDevice.objects.get(user=self.triager).confirmed)
        self.assertEqual(self.client.get("/admin/disclosure/report/").status_code, 200)

    def test_enrolled_staff_are_asked_for_a_code(self):
        device = TOTPDevice.objects.create(user=self.triager, name="phone", confirmed=True)
        self.login(self.triager, verified=False)
        page = self.client.get("/admin/2fa/")
        self.assertContains(page, "Enter your code")
        self.assertNotContains(page, "data:image/svg+xml")  # the secret is never shown again
        self.client.post("/admin/2fa/", {"token": f"{totp(device.bin_key):06d}"})
        self.assertEqual(self.client.get("/admin/").status_code, 200)

    def test_external_next_is_ignored(self):
        device = TOTPDevice.objects.create(user=self.triager, name="phone", confirmed=True)
        self.login(self.triager, verified=False)
        response = self.client.post("/admin/2fa/", {"token": f"{totp(device.bin_key):06d}",
                                                    "next": "https://evil.example/"})
        self.assertRedirects(response, "/admin/", fetch_redirect_response=False)

    def test_metrics_and_downloads_need_the_second_factor_too(self):
        self.login(self.triager, verified=False)
        self.assertEqual(self.client.get("/admin/metrics/").status_code, 302)

    @override_settings(STAFF_2FA_REQUIRED=False)
    def test_can_be_switched_off_for_development(self):
        self.login(self.triager, verified=False)
        self.assertEqual(self.client.get("/admin/disclosure/report/").status_code, 200)


@time_machine.travel(MONDAY_10AM, tick=False)
class CvssTests(BaseTestCase):
    def test_vectors_are_scored_and_mapped_to_priorities(self):
        cases = {
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": (9.8, "critical", "P1"),
            "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N": (6.5, "medium", "P3"),
            "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N": (2.0, "low", "P4"),
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:N": (8.1, "high", "P2"),
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N": (9.3, "critical", "P1"),
        }
        for vector, (score, severity, priority) in cases.items():
            with self.subTest(vector):
                result = score_vector(vector)
                self.assertEqual((result.score, result.severity, result.priority), (score, severity, priority))

    def test_bad_vectors_are_refused_clearly(self):
        for vector in ["", "AV:N/AC:L", "CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:2.0/AV:N"]:
            with self.subTest(vector), self.assertRaises(ValueError):
                score_vector(vector)

    def test_triage_with_a_vector_sets_severity_score_and_priority(self):
        report, _ = make_report()
        report.triage(self.triager, cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:N")
        report.refresh_from_db()
        self.assertEqual((report.severity, float(report.cvss_score), report.priority), ("high", 8.1, "P2"))
        with self.assertRaisesMessage(TransitionError, "Not a valid CVSS vector"):
            report.rate(self.triager, cvss_vector="CVSS:3.1/AV:Z")
        report.rate(self.triager, "low")
        report.refresh_from_db()
        self.assertEqual((report.severity, report.priority, report.cvss_vector), ("low", "P4", ""))
        self.assertEqual(report.events.last().kind, "severity_set")

    def test_triage_form_in_the_admin_takes_a_vector(self):
        report, _ = make_report()
        self.login(self.triager)
        self.client.post(f"/admin/disclosure/report/{report.pk}/act/triage/",
                         {"cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"})
        report.refresh_from_db()
        self.assertEqual((report.status, report.priority), (Status.TRIAGED, "P1"))
        listing = self.client.get("/admin/disclosure/report/")
        self.assertContains(listing, '<span class="prio prio-P1">P1</span> Critical', html=True)


class DetailsTests(BaseTestCase):
    def test_cwe_cve_and_disclosure_date_are_validated_and_recorded(self):
        report, _ = make_report()
        self.login(self.triager)
        url = f"/admin/disclosure/report/{report.pk}/change/"
        bad = self.client.post(url, {"cwe": "79", "cve_id": "CVE-26-1", "attachments-TOTAL_FORMS": 0,
                                     "attachments-INITIAL_FORMS": 0})
        self.assertContains(bad, "Enter a CWE ID such as CWE-79.")
        self.assertContains(bad, "Enter a CVE ID such as CVE-2026-12345.")
        self.client.post(url, {"cwe": "CWE-79", "cve_id": "CVE-2026-12345", "planned_disclosure_date": "2027-01-31",
                               "attachments-TOTAL_FORMS": 0, "attachments-INITIAL_FORMS": 0})
        report.refresh_from_db()
        self.assertEqual((report.cwe, report.cve_id, str(report.planned_disclosure_date)),
                         ("CWE-79", "CVE-2026-12345", "2027-01-31"))
        event = report.events.get(kind="updated")
        self.assertEqual(event.data["cwe"], "CWE-79")
        self.assertEqual(event.actor, self.triager)


class DuplicateSuggestionTests(BaseTestCase):
    def test_similar_title_and_asset_are_suggested(self):
        original, _ = make_report(title="Stored XSS in profile bio", asset="https://app.example.com/profile")
        make_report(title="Open redirect in login", asset="https://auth.example.com/login",
                    description="Unrelated text about redirects")
        new, _ = make_report(title="XSS in the profile page bio field", asset="https://app.example.com/profile")
        self.assertEqual(likely_duplicates(new)[0], original)
        self.login(self.triager)
        page = self.client.get(f"/admin/disclosure/report/{new.pk}/change/")
        self.assertContains(page, original.tracking_id)
        self.assertNotIn("Open redirect in login", [r.title for r in likely_duplicates(new)])


class QueueListTests(BaseTestCase):
    def count_list_queries(self, url="/admin/disclosure/report/"):
        self.client.get(url)  # warm the per-process caches (the public contact address)
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(self.client.get(url).status_code, 200)
        return len(queries)

    def test_query_count_is_the_same_at_10_and_1000_reports(self):
        self.login(self.triager)
        Report.objects.bulk_create(self.reports(10))
        small = self.count_list_queries()
        Report.objects.bulk_create(self.reports(990, offset=10))
        self.assertEqual(self.count_list_queries(), small)
        self.assertEqual(self.count_list_queries("/admin/disclosure/report/?sla=overdue"),
                         self.count_list_queries("/admin/disclosure/report/?sla=overdue"))

    def reports(self, count, offset=0):
        batch = []
        for i in range(offset, offset + count):
            report = Report(tracking_id=f"T-{i:05d}", title=f"Report {i}", description="x",
                            received_at=MONDAY_10AM - timedelta(hours=i), assignee=self.triager if i % 2 else None)
            report.recompute_deadlines(MONDAY_10AM)
            batch.append(report)
        return batch

    @time_machine.travel(MONDAY_10AM + timedelta(days=2), tick=False)
    def test_ordered_by_nearest_open_deadline_with_queues(self):
        late, _ = make_report(title="Oldest", now=MONDAY_10AM - timedelta(days=7))
        fresh, _ = make_report(title="Freshest", now=MONDAY_10AM + timedelta(days=2))
        done, _ = make_report(title="Closed one", now=MONDAY_10AM - timedelta(days=8))
        done.close(self.triager, "spam")
        self.login(self.triager)
        page = self.client.get("/admin/disclosure/report/").content.decode()
        self.assertLess(page.index("Oldest"), page.index("Freshest"))
        self.assertLess(page.index("Freshest"), page.index("Closed one"))
        self.assertIn("Awaiting acknowledgement", page)
        mine = self.client.get("/admin/disclosure/report/?assignee=mine").content.decode()
        self.assertNotIn("Oldest", mine)
        fresh.assign(self.triager, self.triager)
        self.assertIn("Freshest", self.client.get("/admin/disclosure/report/?assignee=mine").content.decode())


@time_machine.travel(MONDAY_10AM, tick=False)
class TimelineTests(BaseTestCase):
    def test_one_timeline_with_messages_notes_and_email_states(self):
        report, _ = make_report()
        report.send_message(self.triager, "Please retest on staging.")
        report.add_note(self.triager, "Internal: owner is the web team.")
        self.login(self.triager)
        page = self.client.get(f"/admin/disclosure/report/{report.pk}/change/").content.decode()
        received, message, note = (page.index("Report received"), page.index("Please retest on staging."),
                                   page.index("Internal: owner is the web team."))
        self.assertLess(received, message)
        self.assertLess(message, note)
        self.assertIn("not shown to the reporter", page)
        self.assertIn("ada@researcher.example · <span class=\"mail-pending\">Pending</span>", page)
