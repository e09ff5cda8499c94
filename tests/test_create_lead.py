"""The first staff account of a production installation: manage.py create_lead."""

import re
from io import StringIO

from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings

from tests.base import start_afresh


@override_settings(SITE_URL="https://security.example.com", STAFF_2FA_REQUIRED=True)
class CreateLeadTests(TestCase):
    def setUp(self):
        start_afresh(self)

    def create(self, *args):
        out = StringIO()
        call_command("create_lead", *args, stdout=out)
        return out.getvalue()

    def test_creates_a_lead_with_a_password_shown_once_and_the_two_factor_step(self):
        output = self.create("lena@example.com")
        user = User.objects.get()
        self.assertEqual((user.username, user.email, user.is_staff, user.is_superuser),
                         ("lena@example.com", "lena@example.com", True, False))
        self.assertEqual(list(user.groups.values_list("name", flat=True)), ["Lead"])
        self.assertTrue(user.has_perm("disclosure.export_report"))
        self.assertTrue(user.has_perm("disclosure.set_legal_hold"))
        password = re.search(r"Password \(shown only this once\): (\S+)", output).group(1)
        self.assertGreaterEqual(len(password), 20)
        self.assertTrue(user.check_password(password))
        self.assertIn("https://security.example.com/admin/2fa/", output)

        # The password works, and the second factor is asked for next.
        self.assertTrue(self.client.login(username="lena@example.com", password=password))
        response = self.client.get("/admin/disclosure/report/", secure=True)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith("/admin/2fa/"))

    def test_another_role_and_a_second_run(self):
        self.create("tina@example.com", "--role", "Triager")
        self.assertEqual(list(User.objects.get().groups.values_list("name", flat=True)), ["Triager"])
        with self.assertRaisesMessage(CommandError, "There is already an account for Tina@example.com"):
            self.create("Tina@example.com")
        with self.assertRaisesMessage(CommandError, "is not an email address"):
            self.create("not-an-address")
