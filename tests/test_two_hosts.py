"""The proof: two portal hosts with no shared disk answer as one.

Two hosts, A and B, each with its own DATA_DIR, GNUPG_HOME (filled only from TEAM_KEY_FILE),
temporary folder and port, each running gunicorn (the Procfile's web command) and
``manage.py worker`` (a django-q2 cluster), sharing only PostgreSQL, Redis and an
S3-compatible server (moto's, a real HTTP server). Mail goes to an SMTP sink on loopback so
every message the hosts send is counted. The steps run in order on the same two hosts:

1. a report with attachments sent to A is read, decrypted and downloaded by staff on B, and
   its status page opens on B;
2. a decision made on B sends each email exactly once, whichever cluster picks it up;
3. deadlines that fall due are warned and escalated exactly once across both clusters;
4. security.txt (and the published key) are byte-identical on A and B, and B answers A's
   ETag with 304;
5. a flood split across A and B is cut at the configured limit for the sum;
6. A is killed (SIGKILL of gunicorn and its cluster) while submissions are in flight: B keeps
   serving, no report a researcher saw confirmed is missing, no email is lost;
7. A restarts with an empty DATA_DIR and GNUPG_HOME and serves everything as before.

Runs only on PostgreSQL + Redis (DATABASE_URL, REDIS_URL, as .ci/run sets them), in a
database of its own (created and dropped here) and Redis database 13 (flushed before and
after; the rest of the suite uses 15).
"""

import email
import email.policy
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from unittest import skipUnless
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection
from django.test import SimpleTestCase

from tests.base import fresh_env
from tests.faults import free_port
from tests.hosts import HOST, Host, PgDatabase, report_form, team_key_file
from tests.s3 import S3Server, env_for, moto_available

REDIS_DB = 13
RATE_LIMIT = 5  # reports per hour per address: the flood's limit, for A and B together
TEAM = "security@security.example.com"
LEAD = "lead@example.com"


def _requirements() -> str:
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        return "needs PostgreSQL and Redis (DATABASE_URL=postgres://..., REDIS_URL=redis://...), as .ci/run sets"
    if not moto_available():
        return "needs moto[server] (pip install -r requirements-dev.txt)"
    try:
        import aiosmtpd  # noqa: F401
        import requests  # noqa: F401
    except ImportError:
        return "needs aiosmtpd and requests (pip install -r requirements-dev.txt)"
    if shutil.which("gpg") is None:
        return "needs gpg"
    return ""


MISSING = _requirements()


# --- The mail sink --------------------------------------------------------------------------
class MailSink:
    """An SMTP server on loopback (aiosmtpd) keeping every message it accepts."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
                with sink.lock:
                    sink.messages.append(message)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def about(self, tracking_id: str, to: str | None = None) -> list:
        with self.lock:
            return [m for m in self.messages if f"[{tracking_id}]" in str(m["Subject"])
                    and (to is None or to in str(m["To"]))]

    def wait_for(self, condition, timeout: float = 60.0, what: str = "mail"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self):
        self.controller.stop()


@skipUnless(not MISSING, MISSING)
class TwoHostsTests(SimpleTestCase):
    databases = set()  # the hosts use a database of their own; this process only reads it with psycopg

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = Path(tempfile.mkdtemp(prefix="proof-"))
        cls.addClassCleanup(shutil.rmtree, cls.root, ignore_errors=True)
        cls.database = cls._create_database()
        cls.redis_url = urlunsplit(urlsplit(settings.REDIS_URL)._replace(path=f"/{REDIS_DB}"))
        cls._flush_redis()
        cls.addClassCleanup(cls._flush_redis)
        cls.s3 = S3Server()
        cls.addClassCleanup(cls.s3.stop)
        bucket = cls.s3.create_bucket("portal-proof")
        cls.mail = MailSink()
        cls.addClassCleanup(cls.mail.stop)
        cls.key_file, cls.fingerprint = cls._team_key()
        static_root = cls.root / "release-static"
        env = fresh_env(str(cls.root), **{
            "DJANGO_SETTINGS_MODULE": "tests.proof_settings", "PROOF_STATIC_ROOT": str(static_root),
            "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "SITE_URL": f"https://{HOST}",
            "BEHIND_PROXY": "true", "TRUSTED_PROXY_COUNT": "1", "LOG_LEVEL": "WARNING",
            "DATABASE_URL": cls.database_url, "REDIS_URL": cls.redis_url, **env_for(cls.s3.url, bucket, "proof"),
            "MAILER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(cls.mail.port), "SMTP_STARTTLS": "false",
            "SECURITY_TEAM_EMAIL": TEAM, "SLA_ESCALATION_EMAIL": LEAD, "Q_WORKERS": "2",
            "TEAM_KEY_FILE": str(cls.key_file), "TEAM_KEY_FINGERPRINT": cls.fingerprint,
            "RATELIMIT_SUBMIT": f"{RATE_LIMIT}/h", "MIN_FORM_SECONDS": "0",
        })
        env.pop("TEAM_KEY_PASSPHRASE", None)
        cls.a, cls.b = Host("a", cls.root, env), Host("b", cls.root, env)
        # The release step, once (as a platform runs it): migrate and collect static files.
        cls.a.manage("migrate", "--no-input")
        cls.a.manage("collectstatic", "--no-input")
        cls.a.wipe()  # the release ran elsewhere: the hosts start from nothing
        for host in (cls.a, cls.b):
            cls.addClassCleanup(host.stop)
            host.start()
        cls.session = cls._staff_session()
        cls.first = {}

    # --- Set-up helpers ------------------------------------------------------------------------
    @classmethod
    def _create_database(cls) -> str:
        cls.db = PgDatabase(f"wthosts_proof_{os.getpid()}")
        cls.db.create()
        cls.addClassCleanup(cls.db.drop)
        cls.database_url = cls.db.url
        return cls.db.name

    @classmethod
    def _flush_redis(cls):
        import redis

        client = redis.Redis.from_url(cls.redis_url)
        client.flushdb()
        client.close()

    @classmethod
    def _team_key(cls):
        return team_key_file(cls.root, TEAM)

    @classmethod
    def _staff_session(cls) -> str:
        return cls.b.shell("""
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django_otp.plugins.otp_totp.models import TOTPDevice
user = User.objects.create_superuser("lena", "lena@example.com", "lead-password-123")
device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
session = SessionStore()
session.update({"_auth_user_id": str(user.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                "_auth_user_hash": user.get_session_auth_hash(), "otp_device_id": device.persistent_id})
session.create()
print(session.session_key)
""")

    def query(self, sql: str, *params):
        return self.db.query(sql, *params)

    def staff(self):
        return {"sessionid": self.session}

    def submit(self, host: Host, title: str, email_address: str, *, client_ip: str, files=None, timeout=30):
        return host.post("/report/", report_form(title, email_address), files=files, client_ip=client_ip,
                         timeout=timeout)

    def confirmed(self, host: Host, response) -> str:
        """The tracking ID the researcher sees on the confirmation page (opened on ``host``)."""
        self.assertEqual(response.status_code, 302, response.text[:500])
        page = host.get("/report/received/", cookies=response.cookies.get_dict())  # (a Secure cookie)
        self.assertEqual(page.status_code, 200)
        return re.search(r"VDP-\d{4}-\d{4,}", page.text).group(0)

    def run_sweeps(self, host: Host, times: int = 4):
        """Queue the sweep on the shared broker: whichever cluster is free takes each one."""
        host.shell(f"from django_q.tasks import async_task\n"
                   f"[async_task('disclosure.tasks.sweep') for _ in range({times})]\nprint('queued')")

    # --- 1 ------------------------------------------------------------------------------------
    def test_1_a_report_sent_to_a_is_read_decrypted_and_downloaded_on_b(self):
        poc, trace = b"#!/bin/sh\ncurl 'https://app.example.com/?q=<script>'\n", bytes(range(256)) * 4000
        response = self.submit(self.a, "Reflected XSS in search", "ada@researcher.example", client_ip="192.0.2.1",
                               files=[("attachments", ("poc.sh", poc, "text/x-sh")),
                                      ("attachments", ("trace.bin", trace, "application/octet-stream"))])
        tracking_id = self.confirmed(self.b, response)  # the confirmation page, opened on B
        pk, = self.query("SELECT id FROM disclosure_report WHERE tracking_id = %s", tracking_id)[0]
        type(self).first = {"tracking_id": tracking_id, "pk": pk, "poc": poc}
        # Stored sealed, in the object store, under random names.
        keys = self.s3.keys("portal-proof")
        self.assertEqual(len(keys), 2)
        for key in keys:
            self.assertRegex(key, r"^proof/attachments/\d{4}/\d{2}/[0-9a-f]{32}$")
        # Staff on B: the report page with the decrypted description, and both files.
        page = self.b.get(f"/admin/disclosure/report/{pk}/change/", cookies=self.staff())
        self.assertEqual(page.status_code, 200, page.text[:300])
        self.assertIn("Reflected XSS in search: the description, to be sealed at rest.", page.text)
        ids = dict(self.query("SELECT original_name, id FROM disclosure_attachment WHERE report_id = %s", pk))
        for name, content in (("poc.sh", poc), ("trace.bin", trace)):
            download = self.b.get(f"/staff/attachments/{ids[name]}/", cookies=self.staff())
            self.assertEqual(download.status_code, 200)
            self.assertEqual(download.content, content)
        # The researcher's status page, from the receipt email, on B.
        self.mail.wait_for(lambda: self.mail.about(tracking_id, "ada@researcher.example"), what="the receipt")
        receipt = self.mail.about(tracking_id, "ada@researcher.example")[0]
        token = re.search(r"/status/([A-Za-z0-9_-]{20,100})/", receipt.as_string()).group(1)
        type(self).first["token"] = token
        status = self.b.get(f"/status/{token}/")
        self.assertEqual(status.status_code, 200)
        self.assertIn(tracking_id, status.text)
        self.assertEqual(self.b.get(f"/status/{token}/files/{ids['poc.sh']}/").content, poc)

    # --- 2 ------------------------------------------------------------------------------------
    def test_2_a_decision_on_b_sends_each_email_exactly_once(self):
        pk, tracking_id = self.first["pk"], self.first["tracking_id"]
        response = self.b.post(f"/admin/disclosure/report/{pk}/act/acknowledge/", {"body": "Thanks, looking."},
                               cookies=self.staff(), client_ip="192.0.2.50")
        self.assertEqual(response.status_code, 302, response.text[:500])
        expected = lambda: self.query(  # noqa: E731
            "SELECT count(*) FROM disclosure_outboundemail WHERE report_id = %s", pk)[0][0]
        self.mail.wait_for(lambda: len(self.mail.about(tracking_id)) >= expected()
                           and not self.query("SELECT 1 FROM disclosure_outboundemail WHERE report_id = %s "
                                              "AND state = 'pending'", pk), what="the decision's emails")
        self.run_sweeps(self.a)
        self.run_sweeps(self.b)
        time.sleep(3)  # anything sent twice would arrive now
        sent = self.mail.about(tracking_id)
        ids = [m["Message-ID"] for m in sent]
        self.assertEqual(len(ids), len(set(ids)), "an email was sent twice")
        self.assertEqual(len(sent), expected())
        self.assertEqual(len(self.mail.about(tracking_id, "ada@researcher.example")), 2)  # receipt, acknowledged
        rows = self.query("SELECT kind, state, attempts FROM disclosure_outboundemail WHERE report_id = %s", pk)
        self.assertTrue(all(state == "sent" and attempts == 1 for _, state, attempts in rows), rows)

    # --- 3 ------------------------------------------------------------------------------------
    def test_3_deadlines_that_fall_due_are_warned_and_escalated_once_across_both_clusters(self):
        # Two reports received 30 days ago (both deadlines missed: two escalations each), and
        # one received just long enough ago that its acknowledgement is due soon (a warning).
        overdue, due_soon = self.a.shell("""
from datetime import timedelta
from django.utils import timezone
from disclosure.models import Report
now = timezone.now()
def received(ago, n):
    fields = {"title": f"Old {n}", "description": "old", "reporter_email": f"old{n}@r.example"}
    return Report.submit(fields=fields, now=now - ago)[0]
overdue = [received(timedelta(days=30), n).tracking_id for n in range(2)]
for hours in range(1, 24 * 14):  # the newest receipt whose acknowledgement is due soon, not yet past
    probe = Report(received_at=now - timedelta(hours=hours))
    probe.recompute_deadlines(now - timedelta(hours=hours))
    if probe.ack_due_at > now and probe.ack_next_alert_at <= now:
        break
print(";".join([",".join(overdue), received(timedelta(hours=hours), 9).tracking_id]))
""").split(";")
        overdue = overdue.split(",")
        for _ in range(3):  # both clusters take sweeps at the same time
            self.run_sweeps(self.a, 3)
            self.run_sweeps(self.b, 3)
        self.mail.wait_for(lambda: all(len(self.mail.about(t, LEAD)) >= 2 for t in overdue)
                           and self.mail.about(due_soon, TEAM), what="the warning and the escalations")
        time.sleep(3)  # anything sent twice would arrive now
        for tracking_id in overdue:
            to_lead = self.mail.about(tracking_id, LEAD)
            self.assertEqual(sorted(str(m["Subject"]).split(": ")[1].split()[0] for m in to_lead),
                             ["acknowledgement", "initial"], [str(m["Subject"]) for m in to_lead])
            self.assertTrue(all("OVERDUE" in str(m["Subject"]) for m in to_lead))
        warnings = [m for m in self.mail.about(due_soon, TEAM) if "Due soon" in str(m["Subject"])]
        self.assertEqual(len(warnings), 1, [str(m["Subject"]) for m in self.mail.about(due_soon)])
        for tracking_id in [*overdue, due_soon]:
            ids = [m["Message-ID"] for m in self.mail.about(tracking_id)]
            self.assertEqual(len(ids), len(set(ids)), f"an email about {tracking_id} was sent twice")
        events = self.query("SELECT r.tracking_id, e.kind, count(*) FROM disclosure_event e JOIN disclosure_report r "
                            "ON r.id = e.report_id WHERE r.tracking_id = ANY(%s) AND (e.kind LIKE '%%_warning' "
                            "OR e.kind LIKE '%%_escalation') GROUP BY 1, 2", [*overdue, due_soon])
        self.assertEqual(sorted((t, kind, n) for t, kind, n in events), sorted(
            [(t, kind, 1) for t in overdue for kind in ("ack_escalation", "assess_escalation")]
            + [(due_soon, "ack_warning", 1)]))

    # --- 4 ------------------------------------------------------------------------------------
    def test_4_security_txt_is_the_same_on_both_hosts(self):
        a, b = self.a.get("/.well-known/security.txt"), self.b.get("/.well-known/security.txt")
        self.assertEqual(a.status_code, 200)
        self.assertTrue(a.text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"))
        self.assertEqual(a.content, b.content)
        for header in ("ETag", "Last-Modified"):
            self.assertEqual(a.headers[header], b.headers[header])
        again = self.b.get("/.well-known/security.txt", headers={"If-None-Match": a.headers["ETag"]})
        self.assertEqual(again.status_code, 304)
        self.assertEqual(self.a.get("/pgp-key.txt").content, self.b.get("/pgp-key.txt").content)

    # --- 5 ------------------------------------------------------------------------------------
    def test_5_a_flood_split_across_both_hosts_is_cut_at_the_limit_for_the_sum(self):
        answers = [self.submit(host, f"Flood {n}", f"flood{n}@spam.example", client_ip="198.51.100.9").status_code
                   for n, host in enumerate([self.a, self.b] * 6)]
        self.assertEqual(answers.count(302), RATE_LIMIT, answers)
        self.assertEqual(answers.count(429), 12 - RATE_LIMIT, answers)

    # --- 6 ------------------------------------------------------------------------------------
    def test_6_a_killed_mid_submissions_loses_no_confirmed_report_and_no_email(self):
        import requests

        results, outcomes, lock, stop = [], [], threading.Lock(), threading.Event()

        def researcher(host: Host, n: int):
            while not stop.is_set() and n < 1000:
                address = f"r{n}-{uuid.uuid4().hex[:6]}@researcher.example"
                try:
                    response = self.submit(host, f"In flight {n}", address, client_ip=f"10.{n // 250}.{n % 250}.9",
                                           files=[("attachments", (f"log{n}.txt", b"x" * 20_000, "text/plain"))],
                                           timeout=30)
                    seen = self.confirmed(self.b, response) if response.status_code == 302 else None
                    why = f"{response.status_code} {response.text[:300]}"
                except (requests.RequestException, AssertionError) as error:
                    seen, why = None, repr(error)  # the host died under the request: no confirmation seen
                with lock:
                    results.append((host.name, address, seen))
                    outcomes.append((host.name, why))
                if seen is None and host is self.a:
                    return  # A is gone: this researcher stops trying there
                n += 2

        threads = [threading.Thread(target=researcher, args=(host, start))
                   for host, start in ((self.a, 0), (self.b, 1), (self.a, 100), (self.b, 101))]
        for thread in threads:
            thread.start()
        time.sleep(4)
        self.a.kill()  # SIGKILL: gunicorn, its workers, the cluster and its workers
        time.sleep(4)  # B keeps serving
        stop.set()
        for thread in threads:
            thread.join(60)
        on_b = [r for r in results if r[0] == "b"]
        self.assertTrue(on_b and all(seen for _, _, seen in on_b),
                        [why for (name, why), (*_, seen) in zip(outcomes, results, strict=True) if not seen])
        confirmed = [seen for _, _, seen in results if seen]
        self.assertTrue(any(name == "a" and seen for name, _, seen in results), "nothing was confirmed by A")
        stored = {t for (t,) in self.query("SELECT tracking_id FROM disclosure_report WHERE tracking_id = ANY(%s)",
                                           confirmed)}
        self.assertEqual(set(confirmed) - stored, set(), "a confirmed report is missing")
        # Every report stored, confirmed or not, gets its receipt: the emails A's cluster had
        # claimed are retried by B's after their lease (2 x the 10 s timeout here).
        addresses = [address for _, address, _ in results]
        reports = self.query("SELECT tracking_id, reporter_email FROM disclosure_report WHERE reporter_email = ANY(%s)",
                             addresses)
        self.assertGreaterEqual(len(reports), len(confirmed))

        def all_sent():
            self.run_sweeps(self.b, 2)
            return (all(self.mail.about(tracking_id, address) for tracking_id, address in reports)
                    and not self.query("SELECT 1 FROM disclosure_outboundemail WHERE state = 'pending'"))

        self.mail.wait_for(all_sent, timeout=120, what="every receipt, and no email left pending")
        self.assertEqual(self.query("SELECT kind, \"to\", last_error FROM disclosure_outboundemail "
                                    "WHERE state <> 'sent'"), [])


    # --- 7 ------------------------------------------------------------------------------------
    def test_7_a_restarted_with_empty_data_dir_and_keyring_serves_as_before(self):
        self.a.kill()
        self.a.wipe()
        self.a.start()
        health = self.a.get("/healthz")
        self.assertEqual(health.status_code, 200, health.text)
        self.assertEqual(health.json()["gpg"], "ok")
        self.assertEqual(health.json()["file_storage"], "ok")
        pk, poc = self.first["pk"], self.first["poc"]
        (attachment_id,) = self.query("SELECT id FROM disclosure_attachment WHERE report_id = %s AND "
                                      "original_name = 'poc.sh'", pk)[0]
        self.assertEqual(self.a.get(f"/staff/attachments/{attachment_id}/", cookies=self.staff()).content, poc)
        self.assertEqual(self.a.get(f"/status/{self.first['token']}/").status_code, 200)
        self.assertEqual(self.a.get("/.well-known/security.txt").content,
                         self.b.get("/.well-known/security.txt").content)
        response = self.submit(self.a, "After the restart", "later@researcher.example", client_ip="192.0.2.77",
                               files=[("attachments", ("later.txt", b"after", "text/plain"))])
        tracking_id = self.confirmed(self.a, response)
        self.mail.wait_for(lambda: self.mail.about(tracking_id, "later@researcher.example"), what="its receipt")

    # --- 8 ------------------------------------------------------------------------------------
    def test_8_both_workers_record_each_credential_once_and_both_hosts_show_the_same_ages(self):
        # Both workers recorded what they were started with at the same moment, and host a's again
        # after its restart (test 7): one row per credential, none retired.
        rows = self.query("SELECT name, count(*), count(retired_at) FROM disclosure_credentialsighting "
                          "GROUP BY name ORDER BY name")
        self.assertEqual(rows, [("S3_SECRET_ACCESS_KEY", 1, 0), ("SECRET_KEY", 1, 0), ("TEAM_KEY", 1, 0)])
        ages = [host.get("/healthz").json() for host in (self.a, self.b)]
        self.assertEqual([body["credential_age_days"] for body in ages],
                         [{"TEAM_KEY": 0, "SECRET_KEY": 0, "S3_SECRET_ACCESS_KEY": 0}] * 2)
        self.assertEqual([body["rotation_overdue"] for body in ages], [[], []])
