"""Several hosts answer the same, and a host on a throw-away disk is warned about at start.
(The whole picture, with two real hosts: tests/test_two_hosts.py.)"""

from datetime import timedelta

from django.utils import timezone

from disclosure import securitytxt
from disclosure.models import Programme
from tests.base import BaseTestCase, run_fresh
from tests.pgp_keys import TeamKeyMixin


class SecurityTxtGeneratedOnceTests(TeamKeyMixin, BaseTestCase):
    def get(self, **headers):
        return self.client.get("/.well-known/security.txt", secure=True, **headers)

    def test_two_hosts_that_find_it_due_together_sign_it_once_and_serve_the_same(self):
        now = timezone.now()
        stale = Programme.load()  # both hosts read the row before either renewed it
        self.assertTrue(securitytxt.needs_renewal(stale, now))
        first = securitytxt.generate(now, stale, only_if_needed=True)  # host A
        second = securitytxt.generate(now + timedelta(seconds=1), stale, only_if_needed=True)  # host B, just after
        self.assertEqual(second.securitytxt, first.securitytxt)
        self.assertEqual(second.securitytxt_generated_at, now)
        self.assertTrue(first.securitytxt.startswith("-----BEGIN PGP SIGNED MESSAGE-----"))

    def test_every_process_serves_the_rows_bytes_etag_and_last_modified(self):
        a = self.get()
        securitytxt.forget()  # another host: nothing in its memory
        b = self.get()
        self.assertEqual(a.content, b.content)
        self.assertEqual((a["ETag"], a["Last-Modified"]), (b["ETag"], b["Last-Modified"]))
        securitytxt.forget()
        self.assertEqual(self.get(HTTP_IF_NONE_MATCH=a["ETag"]).status_code, 304)

    def test_a_change_reaches_every_host_within_the_memory_bound(self):
        before = self.get()
        programme = Programme.load()
        programme.preferred_languages = "en, de"
        programme.save()
        this_host = dict(securitytxt._memory)
        securitytxt.generate(timezone.now(), programme)  # what the admin does on another host...
        securitytxt._memory.update(this_host)  # ...while this host keeps its copy
        self.assertEqual(self.get().content, before.content)  # this host's copy, for up to MEMORY_SECONDS
        securitytxt._memory["at"] -= securitytxt.MEMORY_SECONDS  # a minute later
        self.assertIn(b"Preferred-Languages: en, de", self.get().content)


class EphemeralDiskCheckTests(BaseTestCase):
    def test_a_platform_with_throw_away_disks_is_warned_about_local_files_and_keyring(self):
        result = run_fresh("manage.py", "check", "--deploy", DYNO="web.1", TEAM_KEY_FINGERPRINT="E" * 40)
        self.assertIn("disclosure.W011", result.stderr)
        self.assertIn("looks like Heroku (or Dokku)", result.stderr)
        self.assertIn("Set S3_BUCKET", result.stderr)
        self.assertIn("disclosure.W012", result.stderr)
        self.assertIn("disclosure.W013", result.stderr)  # daily backups onto the same throw-away disk
        self.assertIn("Daily backups would be written to", result.stderr)

    def test_object_storage_and_a_key_file_silence_it_and_a_vm_is_not_warned(self):
        result = run_fresh("manage.py", "check", "--deploy", RENDER="true", S3_BUCKET="portal-files",
                           S3_REGION="eu-west-1")
        self.assertNotIn("disclosure.W011", result.stderr)
        self.assertNotIn("disclosure.W013", result.stderr)  # backups follow the files into the bucket
        result = run_fresh("manage.py", "check", "--deploy", DYNO="web.1", BACKUP_HOUR="-1")
        self.assertNotIn("disclosure.W013", result.stderr)  # backups run elsewhere
        result = run_fresh("manage.py", "check", "--deploy")
        self.assertNotIn("disclosure.W011", result.stderr)
        self.assertNotIn("disclosure.W012", result.stderr)
        self.assertNotIn("disclosure.W013", result.stderr)
