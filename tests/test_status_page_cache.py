"""The status page is rendered once per version of the report and reused (disclosure.pagecache).

Every test here looks at the page once so that it is cached, changes something the page
shows, and checks that the next view shows the change; the clock is frozen, so nothing
relies on time moving between two saves.
"""

import re
import time

import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from disclosure import pagecache
from disclosure.models import Report, StatusLink
from tests.base import MONDAY_10AM, BaseTestCase, make_report, without_rate_limit_store
from tests.pgp_keys import ResearcherKeyring, TeamKeyMixin, researcher_key

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@time_machine.travel(MONDAY_10AM, tick=False)
class StatusPageCacheTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.report, self.token = make_report()
        self.url = f"/status/{self.token}/"

    def page(self, url=None, client=None) -> str:
        response = (client or self.client).get(url or self.url)
        self.assertEqual(response.status_code, 200)
        return response.content.decode()

    def test_a_team_message_shows_at_once(self):
        self.assertNotIn("We can reproduce it", self.page())
        self.report.send_message(self.triager, "We can reproduce it.")
        self.assertIn("We can reproduce it.", self.page())

    def test_an_edit_without_a_public_event_shows_at_once(self):
        self.assertNotIn("CVE-2026-12345", self.page())
        report = Report.objects.get()
        report.cve_id = "CVE-2026-12345"
        report.save()  # what the admin's change form does; updated_at does not move (frozen clock)
        self.assertIn("CVE-2026-12345", self.page())

    def test_a_passing_deadline_shows_without_any_change(self):
        self.assertIn("Due by Thursday 3 December 2026", self.page())
        with time_machine.travel(self.report.ack_due_at.timestamp() + 60, tick=False):
            self.assertIn("Overdue: it was due by Thursday 3 December 2026", self.page())

    def test_each_link_sees_its_own_token_and_never_another(self):
        second = StatusLink.mint(self.report)
        first_page, second_page = self.page(), self.page(f"/status/{second}/")
        self.assertIn(f"/status/{self.token}/export.json", first_page)
        self.assertIn(f"/status/{second}/export.json", second_page)
        self.assertNotIn(second, first_page)
        self.assertNotIn(self.token, second_page)
        for page in (first_page, second_page):
            for placeholder in (pagecache.CSRF, pagecache.TOKEN):
                self.assertNotIn(placeholder, page)

    def test_a_revoked_link_stops_working_although_its_page_was_kept(self):
        self.page()
        StatusLink.objects.update(revoked_at=MONDAY_10AM)
        self.assertEqual(self.client.get(self.url).status_code, 404)

    def test_the_kept_page_carries_a_working_csrf_token_for_each_visitor(self):
        strict = Client(enforce_csrf_checks=True)
        self.page()  # cached by another visitor
        csrf = CSRF_FIELD.search(self.page(client=strict)).group(1)
        response = strict.post(self.url, {"body": "More detail.", "csrfmiddlewaretoken": csrf})
        self.assertRedirects(response, self.url, fetch_redirect_response=False)
        after = self.page(client=strict)
        self.assertIn("Your message was sent to the security team.", after)  # flash: rendered afresh
        self.assertIn("More detail.", after)
        self.assertNotIn("Your message was sent", self.page(client=strict))  # and kept again

    def test_one_query_per_view_once_kept(self):
        self.page()
        with CaptureQueriesContext(connection) as queries:
            self.page()
        # The page's version, and (in the counter table without Redis) the rate-limit block.
        self.assertEqual([sql[:6] for sql in without_rate_limit_store(queries)], ["SELECT"])

    def test_a_withdrawal_shows_at_once(self):
        self.assertIn("Withdraw this report", self.page())
        Report.objects.get().withdraw()
        page = self.page()
        self.assertNotIn("Withdraw this report", page)
        self.assertIn("This report is closed.", page)

    def test_a_save_naming_its_fields_shows_at_once(self):
        self.page()
        report = Report.objects.get()
        report.cve_id = "CVE-2026-54321"
        report.save(update_fields=["cve_id", "updated_at"])  # what the admin's change form does
        self.assertIn("CVE-2026-54321", self.page())

    def test_a_report_keeps_one_page_and_expired_pages_are_dropped(self):
        self.page()
        self.report.send_message(self.triager, "First.")
        self.page()
        other, other_token = make_report(title="Another report")
        self.page(f"/status/{other_token}/")
        kept = [key[0] for key in pagecache._status_pages]
        self.assertEqual(sorted(kept), sorted([self.report.pk, other.pk]))  # the superseded version is gone
        pagecache._last_sweep[0] = 0
        pagecache._forget_expired(time.monotonic() + pagecache.STATUS_PAGE_SECONDS + 1)
        self.assertEqual(len(pagecache._status_pages), 0)


@time_machine.travel(MONDAY_10AM, tick=False)
class StatusPageCacheWithTeamKeyTests(TeamKeyMixin, BaseTestCase):
    def test_text_that_could_not_be_decrypted_here_is_not_kept(self):
        with ResearcherKeyring() as keyring:
            fingerprint = researcher_key(keyring)
            foreign = keyring.run("--armor", "--trust-model", "always", "--encrypt", "--recipient", fingerprint,
                                  input_bytes=b"for someone else").stdout.decode()
        _, token = make_report(description=foreign)  # sealed, but not to the key on this server
        for _ in range(2):
            with CaptureQueriesContext(connection) as queries:
                page = self.client.get(f"/status/{token}/").content.decode()
            self.assertIn(pagecache.SEALED_NOTICE, page)
            self.assertGreater(len(without_rate_limit_store(queries)), 1)  # rendered again
