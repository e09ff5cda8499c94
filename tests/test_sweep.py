"""The SLA sweep: warnings before a deadline, escalations after, each exactly once."""

import unittest
from datetime import UTC, datetime, timedelta

from django.core import mail
from django.db import connection
from django.test import TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext

from disclosure import tasks
from disclosure.models import SLA_ALERTS, AlertLevel, Event, Report
from tests.base import MONDAY_10AM, BaseTestCase, make_report, run_at_once

WEDNESDAY_NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
THURSDAY_0005 = datetime(2026, 12, 3, 0, 5, tzinfo=UTC)
FRIDAY_0005 = datetime(2026, 12, 4, 0, 5, tzinfo=UTC)


def alerts(report=None):
    events = Event.objects.filter(kind__in=SLA_ALERTS.values())
    if report is not None:
        events = events.filter(report=report)
    return list(events.order_by("created_at", "pk").values_list("kind", flat=True))


@override_settings(SECURITY_TEAM_EMAIL="team@example.com", SLA_ESCALATION_EMAIL="lead@example.com")
class SweepTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        with self.captureOnCommitCallbacks(execute=True):
            self.report, _ = make_report(now=MONDAY_10AM)  # ack due Thu 3 Dec 23:59:59 GMT
        mail.outbox.clear()

    def sweep(self, now):
        with self.captureOnCommitCallbacks(execute=True):
            return tasks.sweep(now)

    def test_nothing_before_the_warning_time(self):
        self.assertEqual(self.sweep(WEDNESDAY_NOON)["sla_alerts"], 0)
        self.assertEqual(alerts(), [])

    def test_warning_on_the_due_day_then_escalation_after_the_deadline(self):
        self.assertEqual(self.sweep(THURSDAY_0005)["sla_alerts"], 1)
        self.assertEqual(alerts(), ["ack_warning"])
        [warning] = mail.outbox
        self.assertEqual(warning.to, ["team@example.com"])
        self.assertEqual(warning.subject, "[VDP-2026-0001] Due soon: acknowledgement due Thu 3 Dec 23:59 GMT")
        self.assertIn("/admin/disclosure/report/", warning.body)
        mail.outbox.clear()

        self.assertEqual(self.sweep(FRIDAY_0005)["sla_alerts"], 1)
        self.assertEqual(alerts(), ["ack_warning", "ack_escalation"])
        [escalation] = mail.outbox
        self.assertEqual(escalation.to, ["lead@example.com"])
        self.assertEqual(escalation.subject,
                         "[VDP-2026-0001] OVERDUE: acknowledgement was due Thu 3 Dec 23:59 GMT")
        self.report.refresh_from_db()
        self.assertEqual(self.report.ack_alert_level, AlertLevel.ESCALATED)
        self.assertIsNone(self.report.ack_next_alert_at)

    def test_a_second_sweep_sends_nothing_twice(self):
        self.sweep(THURSDAY_0005)
        self.assertEqual(self.sweep(THURSDAY_0005)["sla_alerts"], 0)
        self.assertEqual(self.sweep(THURSDAY_0005 + timedelta(hours=1))["sla_alerts"], 0)
        self.assertEqual(alerts(), ["ack_warning"])
        self.assertEqual(len(mail.outbox), 1)

    def test_the_assignee_is_warned_too(self):
        Report.objects.filter(pk=self.report.pk).update(assignee=self.triager)
        self.sweep(THURSDAY_0005)
        self.assertEqual(sorted(m.to[0] for m in mail.outbox), ["team@example.com", "tess@example.com"])

    def test_a_met_milestone_raises_nothing(self):
        self.report.acknowledge(self.triager, now=WEDNESDAY_NOON)
        self.assertEqual(self.sweep(FRIDAY_0005)["sla_alerts"], 0)

    def test_assessment_alerts_follow_acknowledgement(self):
        self.report.acknowledge(self.triager, now=WEDNESDAY_NOON)
        # Assessment due Monday 14 December 23:59:59; warning from Friday 11 December 23:59:59.
        self.assertEqual(self.sweep(datetime(2026, 12, 11, 12, 0, tzinfo=UTC))["sla_alerts"], 0)
        self.sweep(datetime(2026, 12, 12, 9, 0, tzinfo=UTC))
        self.sweep(datetime(2026, 12, 15, 9, 0, tzinfo=UTC))
        self.assertEqual(alerts(), ["assess_warning", "assess_escalation"])

    def test_a_paused_clock_raises_no_assessment_alert(self):
        self.report.request_info(self.triager, "Which version?", now=WEDNESDAY_NOON)
        self.assertEqual(self.sweep(datetime(2026, 12, 30, 9, 0, tzinfo=UTC))["sla_alerts"], 0)

    def test_catch_up_after_the_worker_was_down_over_a_weekend(self):
        with self.captureOnCommitCallbacks(execute=True):
            others = [make_report(now=MONDAY_10AM + timedelta(hours=i))[0] for i in range(1, 4)]
        mail.outbox.clear()
        # First sweep since Monday, the following Monday morning: every acknowledgement is
        # overdue; escalate each once (a warning about a missed deadline would be noise).
        self.assertEqual(self.sweep(datetime(2026, 12, 7, 8, 0, tzinfo=UTC))["sla_alerts"], 4)
        for report in [self.report, *others]:
            self.assertEqual(alerts(report), ["ack_escalation"])
        self.assertEqual(len(mail.outbox), 4)
        self.assertEqual(self.sweep(datetime(2026, 12, 7, 8, 1, tzinfo=UTC))["sla_alerts"], 0)

    def test_one_bad_report_does_not_stop_the_others(self):
        with self.captureOnCommitCallbacks(execute=True):
            good, _ = make_report(now=MONDAY_10AM)
        # A row left inconsistent (say by a manual database edit): its deadline is gone.
        Report.objects.filter(pk=self.report.pk).update(ack_due_at=None)
        with self.assertLogs("disclosure.tasks", "ERROR"):
            self.assertEqual(self.sweep(THURSDAY_0005)["sla_alerts"], 1)
        self.assertEqual(alerts(good), ["ack_warning"])
        self.assertEqual(alerts(self.report), [])

    def test_cost_grows_with_reports_due_not_with_the_total(self):
        for i in range(30):
            make_report(now=THURSDAY_0005 + timedelta(minutes=i))  # not due for days
        with self.assertNumQueries(2):  # one indexed query per milestone, nothing due
            tasks.raise_due_sla_alerts(WEDNESDAY_NOON)

    def test_the_whole_idle_pass_costs_the_same_at_any_size(self):
        def idle_queries():
            with CaptureQueriesContext(connection) as captured:
                tasks.sweep(WEDNESDAY_NOON)
            return [query["sql"] for query in captured.captured_queries
                    if query["sql"].startswith("SELECT") and "_cache" not in query["sql"]]

        small = idle_queries()
        with self.captureOnCommitCallbacks(execute=True):  # their emails sent: nothing left to retry
            for i in range(30):
                make_report(now=THURSDAY_0005 + timedelta(minutes=i))
        self.assertEqual(len(idle_queries()), len(small))
        self.assertEqual(len(small), 8)  # SLA (2), breach clocks (2), email, webhook, inbound mail, file deletion

    def test_sweep_command_runs_the_same_code(self):
        from io import StringIO

        import time_machine
        from django.core.management import call_command

        out = StringIO()
        with time_machine.travel(THURSDAY_0005, tick=False), self.captureOnCommitCallbacks(execute=True):
            call_command("sweep", stdout=out)
        self.assertIn("sla_alerts: 1", out.getvalue())
        self.assertEqual(alerts(), ["ack_warning"])


@unittest.skipUnless(connection.vendor == "postgresql", "needs concurrent transactions (PostgreSQL)")
class ConcurrentSweepTests(TransactionTestCase):
    def test_two_workers_at_once_record_each_alert_once(self):
        for i in range(5):
            make_report(now=MONDAY_10AM + timedelta(minutes=i))
        results = run_at_once(lambda: tasks.raise_due_sla_alerts(THURSDAY_0005))
        self.assertEqual(sum(results), 5)
        self.assertEqual(Event.objects.filter(kind="ack_warning").count(), 5)
