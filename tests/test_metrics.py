"""Response-time metrics for staff, the SLA-state filters behind them, and the daily digest."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from django.core import mail
from django.test import override_settings

from disclosure import tasks
from disclosure.metrics import sla_metrics
from disclosure.models import Report, SlaState
from tests.base import MONDAY_10AM, BaseTestCase, make_report

FRIDAY = MONDAY_10AM + timedelta(days=4)


class MetricsTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.on_time, _ = make_report(title="on time")
        self.on_time.acknowledge(self.triager, now=MONDAY_10AM + timedelta(hours=4))
        self.on_time.triage(self.triager, "high", now=MONDAY_10AM + timedelta(days=2))
        self.late, _ = make_report(title="late")
        self.late.acknowledge(self.triager, now=FRIDAY)  # ack was due Thursday
        self.waiting, _ = make_report(title="waiting")
        self.paused, _ = make_report(title="paused")
        self.paused.request_info(self.triager, "Version?", now=MONDAY_10AM + timedelta(hours=1))

    def test_on_time_shares_and_median_times(self):
        metrics = sla_metrics(FRIDAY + timedelta(hours=1))
        self.assertEqual(metrics["received"], 4)
        self.assertEqual((metrics["ack_total"], metrics["ack_on_time_pct"]), (3, 66.7))
        self.assertEqual((metrics["assess_total"], metrics["assess_on_time_pct"]), (1, 100.0))
        self.assertEqual(metrics["ack_median"], timedelta(hours=4))
        self.assertEqual(metrics["assess_median"], timedelta(days=2))
        states = {state: count for _, count, state in metrics["open_by_state"]}
        self.assertEqual(states, {"overdue": 1, "due_today": 0, "due_soon": 0, "on_track": 1, "paused": 1,
                                  "met": 1, "met_late": 0})

    def test_database_filters_agree_with_the_badges(self):
        for now in [MONDAY_10AM, datetime(2026, 12, 2, 12, 0, tzinfo=UTC), datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
                    FRIDAY, MONDAY_10AM + timedelta(days=14)]:
            for report in Report.objects.all():
                state = report.sla_state(now)
                with self.subTest(report=report.title, now=now):
                    self.assertTrue(Report.objects.in_sla_state(state, now).filter(pk=report.pk).exists())
                    others = [s for s in SlaState if s != state]
                    for other in others:
                        self.assertFalse(Report.objects.in_sla_state(other, now).filter(pk=report.pk).exists(), other)

    def test_dashboard_lists_counts_by_status_and_the_overdue_reports(self):
        with time_machine.travel(FRIDAY + timedelta(hours=1), tick=False):
            self.login(self.auditor)
            page = self.client.get("/admin/metrics/")
        self.assertContains(page, "All reports by status")
        self.assertContains(page, '?status__exact=acknowledged">Acknowledged</a></th><td>1</td>', html=False)
        self.assertContains(page, "Overdue (1)")
        self.assertContains(page, "VDP-2026-0003</a> waiting")
        self.assertContains(page, "none configured")  # no team key in this test

    def test_metrics_page_for_staff_only(self):
        self.login(self.auditor)
        page = self.client.get("/admin/metrics/")
        self.assertContains(page, "Meeting the policy")
        self.assertContains(page, "Acknowledgement (3 business days)")
        self.assertContains(page, "<td>4 h</td>", html=True)  # median time to acknowledge
        self.assertContains(page, "Assessed on time, still open")
        self.login(self.stranger)
        self.assertEqual(self.client.get("/admin/metrics/").status_code, 302)


@override_settings(SECURITY_TEAM_EMAIL="team@example.com")
class DigestTests(BaseTestCase):
    def test_digest_lists_what_needs_attention_once_a_day(self):
        make_report(title="Overdue one")
        mail.outbox.clear()
        morning = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
        with self.captureOnCommitCallbacks(execute=True):
            self.assertTrue(tasks.send_daily_digest(morning))
            self.assertFalse(tasks.send_daily_digest(morning + timedelta(hours=1)))
        [digest] = mail.outbox
        self.assertEqual(digest.to, ["team@example.com"])
        self.assertEqual(digest.subject, "Disclosure digest Mon 7 Dec: 1 overdue, 0 due today, 0 new")
        self.assertIn("VDP-2026-0001 Overdue one", digest.body)

    @override_settings(DAILY_DIGEST_HOUR=7)
    def test_digest_schedule_is_created_when_configured(self):
        from django_q.models import Schedule

        tasks.ensure_schedules()
        schedule = Schedule.objects.get(name="disclosure-digest")
        self.assertEqual(schedule.func, "disclosure.tasks.send_daily_digest")
        self.assertEqual(schedule.next_run.astimezone(ZoneInfo("Europe/London")).hour, 7)
        with override_settings(DAILY_DIGEST_HOUR=-1):
            tasks.ensure_schedules()
        self.assertFalse(Schedule.objects.filter(name="disclosure-digest").exists())

    def test_sweep_schedule_exists_once(self):
        from django_q.models import Schedule

        tasks.ensure_schedules()
        tasks.ensure_schedules()
        self.assertEqual(Schedule.objects.filter(name="disclosure-sweep").count(), 1)
