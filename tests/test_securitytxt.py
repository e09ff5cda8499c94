"""security.txt (RFC 9116), the published team key, WKD, and the pages security.txt names."""

import unittest
from datetime import timedelta
from io import StringIO

import time_machine
from django.core import mail
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import TransactionTestCase, override_settings
from django.utils import timezone
from sectxt import Parser

from disclosure import pgp, securitytxt, tasks
from disclosure.models import Credit, OutboundEmail, Programme, Report
from tests.base import MONDAY_10AM, BaseTestCase, make_report, run_at_once
from tests.pgp_keys import SITE, ResearcherKeyring, TeamKeyMixin

URL = "/.well-known/security.txt"


def validate(body: bytes) -> Parser:
    return Parser(body, urls=f"{SITE}{URL}")


class SignedSecurityTxtTests(TeamKeyMixin, BaseTestCase):
    def get(self, path=URL, **headers):
        return self.client.get(path, secure=True, **headers)

    def test_served_as_plain_text_with_every_field(self):
        response = self.get()
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "text/plain; charset=utf-8")
        body = response.content.decode()
        self.assertTrue(body.startswith("-----BEGIN PGP SIGNED MESSAGE-----\n"))
        self.assertTrue(body.endswith("-----END PGP SIGNATURE-----\n"))
        for line in [
            "Contact: mailto:security@security.example.com",
            f"Contact: {SITE}/report/",
            f"Encryption: {SITE}/pgp-key.txt",
            f"Acknowledgments: {SITE}/hall-of-fame/",
            "Preferred-Languages: en",
            f"Canonical: {SITE}/.well-known/security.txt",
            f"Policy: {SITE}/policy/",
        ]:
            self.assertIn(line + "\n", body)
        self.assertLess(body.index("Contact: mailto:"), body.index(f"Contact: {SITE}/report/"))

    def test_an_independent_validator_finds_no_errors_or_warnings(self):
        parser = validate(self.get().content)
        self.assertTrue(parser.is_valid())
        self.assertEqual(parser.errors, [])
        self.assertEqual(parser.recommendations, [])

    def test_expires_is_in_the_future_and_less_than_a_year_ahead(self):
        now = timezone.now()
        self.get()
        expires = Programme.load().securitytxt_expires_at
        self.assertGreater(expires, now + timedelta(days=90))
        self.assertLess(expires, now + timedelta(days=365))
        self.assertIn(f"Expires: {expires:%Y-%m-%dT%H:%M:%SZ}", self.get().content.decode())

    def test_signature_verifies_with_only_the_published_key_and_tampering_is_caught(self):
        body = self.get().content
        key = self.get("/pgp-key.txt")
        self.assertEqual(key["Content-Type"], "text/plain; charset=utf-8")
        with ResearcherKeyring() as researcher:
            self.assertEqual(researcher.run("--import", input_bytes=key.content).returncode, 0)
            good = researcher.run("--verify", input_bytes=body)
            self.assertEqual(good.returncode, 0, good.stderr)
            self.assertIn(b"Good signature", good.stderr)
            tampered = body.replace(b"Preferred-Languages: en", b"Preferred-Languages: fr")
            self.assertNotEqual(researcher.run("--verify", input_bytes=tampered).returncode, 0)

    def test_conditional_get_answers_304(self):
        first = self.get()
        again = self.get(HTTP_IF_NONE_MATCH=first["ETag"])
        self.assertEqual(again.status_code, 304)
        self.assertEqual(again.content, b"")
        self.assertEqual(self.get(HTTP_IF_NONE_MATCH="W/" + first["ETag"]).status_code, 304)  # weakened by a proxy
        self.assertEqual(self.get(HTTP_IF_NONE_MATCH="*").status_code, 304)
        self.assertEqual(self.get(HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code, 304)
        self.assertEqual(self.get(HTTP_IF_NONE_MATCH='"something-else"').status_code, 200)
        self.assertIn("Last-Modified", first)
        self.assertIn("max-age", first["Cache-Control"])

    def test_signing_happens_when_content_changes_not_per_request(self):
        self.get()
        generated = Programme.load().securitytxt_generated_at
        securitytxt.forget()
        self.get()
        self.assertEqual(Programme.load().securitytxt_generated_at, generated)

    def test_old_address_redirects_permanently(self):
        response = self.get("/security.txt")
        self.assertEqual(response.status_code, 301)
        self.assertEqual(response["Location"], URL)

    def test_still_valid_thirteen_months_later_after_renewal(self):
        self.get()
        later = timezone.now() + timedelta(days=396)
        with time_machine.travel(later, tick=False):
            self.assertTrue(tasks.housekeeping()["securitytxt_renewed"])
            securitytxt.forget()
            body = self.get().content
            parser = validate(body)
            self.assertTrue(parser.is_valid(), parser.errors)
            self.assertEqual(securitytxt.problems(body.decode(), self.get("/pgp-key.txt").content.decode(),
                                                  timezone.now()), [])
            self.assertFalse(tasks.housekeeping()["securitytxt_renewed"])  # nothing to do twice

    def test_a_lead_changes_programme_settings_and_the_file_is_resigned(self):
        from django.contrib.auth.models import Group, User

        lead = User.objects.create_user("lena", "lena@example.com", "a-long-password-1", is_staff=True)
        lead.groups.add(Group.objects.get(name="Lead"))
        self.login(lead)
        programme = Programme.load()
        response = self.client.post(f"/admin/disclosure/programme/{programme.pk}/change/", {
            "contact_emails": "psirt@security.example.com\nsecurity@security.example.com",
            "preferred_languages": "en, de", "hiring_url": f"{SITE}/jobs/", "csaf_url": "", "policy_text": "",
        }, secure=True)
        self.assertEqual(response.status_code, 302)
        body = self.get().content.decode()
        self.assertIn("Contact: mailto:psirt@security.example.com\nContact: mailto:security@security.example.com",
                      body)
        self.assertIn("Preferred-Languages: en, de", body)
        self.assertIn(f"Hiring: {SITE}/jobs/", body)
        self.assertEqual(validate(body.encode()).errors, [])
        # The site's pages show the first contact address too.
        self.assertContains(self.client.get("/policy/", secure=True), "mailto:psirt@security.example.com")

    def test_programme_settings_are_validated(self):
        programme = Programme(contact_emails="not an address", preferred_languages="english!!",
                              hiring_url="http://insecure.example.com/")
        with self.assertRaises(Exception) as caught:
            programme.full_clean()
        self.assertEqual(set(caught.exception.message_dict),
                         {"contact_emails", "preferred_languages", "hiring_url"})

    def test_triager_cannot_change_programme_settings(self):
        from django.contrib.auth.models import Group, User

        triager = User.objects.create_user("tina", "tina@example.com", "a-long-password-1", is_staff=True)
        triager.groups.add(Group.objects.get(name="Triager"))
        self.login(triager)
        response = self.client.post(f"/admin/disclosure/programme/{Programme.load().pk}/change/",
                                    {"contact_emails": "x@example.com"}, secure=True)
        self.assertEqual(response.status_code, 403)

    def test_check_command_passes(self):
        out = StringIO()
        call_command("check_securitytxt", stdout=out)
        self.assertIn("security.txt is valid and its signature verifies.", out.getvalue())

    @override_settings(SECURE_SSL_REDIRECT=True)
    def test_check_command_passes_on_an_https_deployment(self):
        # Production redirects plain http to https: the command must ask over https.
        self.assertEqual(self.client.get(URL).status_code, 301)
        out = StringIO()
        call_command("check_securitytxt", stdout=out)
        self.assertIn("security.txt is valid and its signature verifies.", out.getvalue())

    def test_no_team_key_problems_in_system_checks(self):
        key_checks = {"disclosure.W002", "disclosure.W003", "disclosure.E008", "disclosure.E009"}
        self.assertEqual([m for m in run_checks() if m.id in key_checks], [])


class WebKeyDirectoryTests(TeamKeyMixin, BaseTestCase):
    def test_hash_matches_the_specification_example(self):
        # draft-koch-openpgp-webkey-service: "Joe.Doe@Example.ORG" -> iy9q119eutrkn8s1mk4r39qejnbu3n5q
        self.assertEqual(pgp.wkd_hash("Joe.Doe"), "iy9q119eutrkn8s1mk4r39qejnbu3n5q")

    def test_team_key_is_served_at_its_wkd_path(self):
        path = f"/.well-known/openpgpkey/hu/{pgp.wkd_hash('security')}"
        response = self.client.get(path, {"l": "security"}, secure=True)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "application/octet-stream")
        with ResearcherKeyring() as researcher:
            imported = researcher.run("--import", input_bytes=response.content)
            self.assertEqual(imported.returncode, 0, imported.stderr)
            listed = researcher.run("--with-colons", "--list-keys")
            self.assertIn(self.fingerprint.encode(), listed.stdout)
        self.assertEqual(self.client.get(f"/.well-known/openpgpkey/hu/{pgp.wkd_hash('other')}",
                                         secure=True).status_code, 404)
        self.assertEqual(self.client.get("/.well-known/openpgpkey/policy", secure=True).status_code, 200)


class ExpiringKeyTests(TeamKeyMixin, BaseTestCase):
    team_key_expire = "10d"

    def test_team_is_warned_weekly_before_the_key_expires_and_checks_fail(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.assertTrue(tasks.housekeeping()["key_alert"])
            self.assertFalse(tasks.housekeeping()["key_alert"])
        [alert] = mail.outbox
        self.assertIn("PGP key expires on", alert.subject)
        self.assertIn("gpg --quick-set-expire", alert.body)
        self.assertIn("disclosure.E009", [m.id for m in run_checks()])
        with self.assertRaises(CommandError):
            call_command("check_securitytxt", stdout=StringIO(), stderr=StringIO())


@unittest.skipUnless(connection.vendor == "postgresql", "needs concurrent transactions (PostgreSQL)")
class ExpiringKeyTwoWorkersTests(TeamKeyMixin, TransactionTestCase):
    team_key_expire = "10d"

    def test_two_workers_at_once_send_one_warning(self):
        now = timezone.now()
        Programme.load()
        self.assertEqual(sorted(run_at_once(lambda: tasks.key_expiry_alert(now), times=3)), [False, False, True])
        self.assertEqual(OutboundEmail.objects.filter(kind=OutboundEmail.Kind.TEAM_KEY_EXPIRY).count(), 1)


class UnsignedAndMisconfiguredTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        securitytxt.forget()
        self.addCleanup(securitytxt.forget)

    @override_settings(SITE_URL=SITE, ALLOWED_HOSTS=["testserver"])
    def test_without_a_key_the_file_is_unsigned_but_valid(self):
        body = self.client.get(URL, secure=True).content
        self.assertTrue(body.startswith(b"# Security contact"))
        self.assertNotIn(b"Encryption:", body)
        self.assertTrue(validate(body).is_valid())
        self.assertEqual(self.client.get("/pgp-key.txt").status_code, 404)
        self.assertIn("disclosure.W002", [m.id for m in run_checks()])

    @override_settings(TEAM_KEY_FINGERPRINT="A" * 40)
    def test_a_fingerprint_missing_from_the_keyring_is_an_error(self):
        self.assertIn("disclosure.E008", [m.id for m in run_checks()])


@time_machine.travel(MONDAY_10AM, tick=False)
class HallOfFameTests(BaseTestCase):
    def test_credited_researchers_appear_once_resolved(self):
        report, token = make_report(credit="name", credit_name="ada_l")
        anonymous, _ = make_report(credit="none", credit_name="")
        self.assertNotContains(self.client.get("/hall-of-fame/"), "ada_l")
        for r in (report, anonymous):
            r.triage(self.triager, "high")
            r.resolve(self.triager)
        page = self.client.get("/hall-of-fame/")
        self.assertContains(page, "<strong>ada_l</strong>", html=True)
        self.assertContains(page, "November 2026")
        self.assertNotContains(page, "Ada Researcher")

    def test_reporter_changes_their_credit_on_the_status_page(self):
        report, token = make_report(credit="none", credit_name="")
        response = self.client.post(f"/status/{token}/credit/", {"credit": "name", "credit_name": "zero_cool"})
        self.assertRedirects(response, f"/status/{token}/", fetch_redirect_response=False)
        report.refresh_from_db()
        self.assertEqual((report.credit, report.credit_name), (Credit.NAME, "zero_cool"))
        self.assertEqual(report.events.last().kind, "credit_changed")
        bad = self.client.post(f"/status/{token}/credit/", {"credit": "name", "credit_name": ""})
        self.assertContains(bad, '<p class="error" id="id_credit_name_error">Tell us the name or handle to credit.</p>',
                            status_code=400, html=True)
        self.assertContains(bad, 'value="name" checked', status_code=400)
        self.assertEqual(self.client.post("/status/" + "x" * 43 + "/credit/", {"credit": "none"}).status_code, 404)

    def test_credit_name_defaults_to_the_reporter_name(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post("/report/", {"title": "t", "description": "d", "reporter_name": "Grace",
                                          "credit": "name"})
        self.assertEqual(Report.objects.get().credit_name, "Grace")


class EditablePolicyTests(BaseTestCase):
    def test_policy_text_is_editable_and_commitments_stay_bound_to_the_settings(self):
        programme = Programme.load()
        programme.policy_text = "## Scope\n\nOnly **\\*.example.com** is in scope."
        programme.save()
        with override_settings(SLA_ACKNOWLEDGE_DAYS=2):
            page = self.client.get("/policy/")
        self.assertContains(page, "<strong>*.example.com</strong>", html=True)
        self.assertContains(page, "within <strong>2 business days</strong>")
        self.assertNotContains(page, "denial-of-service")  # the default scope text is replaced
