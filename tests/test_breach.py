"""Breach clocks: recorded on a report, enforced by the sweep in wall-clock hours, stopped by
a notification, counted in the metrics, exported, and never shown to the reporter."""

import csv
import io
import unittest
from datetime import datetime, timedelta

import time_machine
from django.contrib.auth.models import Group, User
from django.core import mail
from django.db import connection
from django.test import TransactionTestCase, override_settings

from disclosure import incidents, tasks
from disclosure.incidents import BreachAlert, BreachAssessment
from disclosure.models import Event, Report, TransitionError
from tests.base import LONDON, BaseTestCase, make_report, run_at_once

FRIDAY_5PM = datetime(2026, 11, 27, 17, 0, tzinfo=LONDON)
SATURDAY_5PM = datetime(2026, 11, 28, 17, 0, tzinfo=LONDON)
MONDAY_5PM = datetime(2026, 11, 30, 17, 0, tzinfo=LONDON)
BREACH_KINDS = [Event.Kind.BREACH_WARNING, Event.Kind.BREACH_ESCALATION]


def at(day, hour, minute=0):
    return datetime(2026, 11, day, hour, minute, tzinfo=LONDON)


def breach_alerts(report=None):
    events = Event.objects.filter(kind__in=BREACH_KINDS)
    if report is not None:
        events = events.filter(report=report)
    return [(e.data["clock"], e.kind.removeprefix("breach_"), e.created_at)
            for e in events.order_by("created_at", "pk")]


@override_settings(SECURITY_TEAM_EMAIL="team@example.com", SLA_ESCALATION_EMAIL="lead@example.com")
class BreachClockTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        with self.captureOnCommitCallbacks(execute=True):
            self.report, _ = make_report(now=at(27, 10))
        mail.outbox.clear()

    def record_breach(self, now=FRIDAY_5PM, **kwargs):
        kwargs.setdefault("categories", "names, email addresses")
        kwargs.setdefault("approx_subjects", 1200)
        with time_machine.travel(now, tick=False), self.captureOnCommitCallbacks(execute=True):
            return self.report.assess_breach(self.triager, personal_data=True, **kwargs)

    def sweep(self, now):
        with time_machine.travel(now, tick=False), self.captureOnCommitCallbacks(execute=True):
            return tasks.sweep(now)

    def sweep_every_hour(self, start, end):
        moment = start
        while moment <= end:
            self.sweep(moment)
            moment += timedelta(hours=1)

    def test_clock_arithmetic_counts_wall_clock_hours(self):
        self.assertEqual(incidents.alert_times(FRIDAY_5PM, 24, ["50%", "4h"]),
                         [at(28, 5), at(28, 13), SATURDAY_5PM])
        self.assertEqual(incidents.alert_times(FRIDAY_5PM, 72, ["50%", "4h"]),
                         [at(29, 5), at(30, 13), MONDAY_5PM])
        # A mark outside the clock (8 hours left on a 6-hour clock) is dropped; duplicates count once.
        self.assertEqual(incidents.alert_times(FRIDAY_5PM, 6, ["8h", "50%", "3h"]), [at(27, 20), at(27, 23)])

    def test_recording_starts_both_clocks_as_stored_indexed_deadlines(self):
        event = self.record_breach()
        breach = BreachAssessment.objects.get(report=self.report)
        self.assertEqual((breach.client_due_at, breach.regulator_due_at), (SATURDAY_5PM, MONDAY_5PM))
        self.assertEqual((breach.client_outcome, breach.regulator_outcome), ("pending", "pending"))
        self.assertEqual(breach.client_next_alert_at, at(28, 5))
        self.assertEqual(event.kind, Event.Kind.BREACH_ASSESSED)
        self.assertFalse(event.public)
        self.assertEqual(event.actor, self.triager)
        self.assertEqual(event.data["client_due"], SATURDAY_5PM.isoformat())

    def test_a_friday_breach_warns_saturday_and_escalates_at_24_and_72_hours_each_once(self):
        self.record_breach()
        self.sweep_every_hour(FRIDAY_5PM, at(30, 23))
        self.assertEqual(breach_alerts(), [
            ("client", "warning", at(28, 5)), ("client", "warning", at(28, 13)),
            ("client", "escalation", SATURDAY_5PM),
            ("regulator", "warning", at(29, 5)), ("regulator", "warning", at(30, 13)),
            ("regulator", "escalation", MONDAY_5PM),
        ])
        self.assertEqual(BreachAlert.objects.count(), 6)
        escalations = [m for m in mail.outbox if "BREACH DEADLINE MISSED" in m.subject]
        self.assertEqual([m.to for m in escalations], [["lead@example.com"], ["lead@example.com"]])
        self.assertEqual(escalations[0].subject,
                         "[VDP-2026-0001] BREACH DEADLINE MISSED: notifying clients was due Sat 28 Nov 17:00 GMT")
        warnings = [m for m in mail.outbox if m.subject.startswith("[VDP-2026-0001] Breach: notify")]
        self.assertEqual(len(warnings), 4)
        self.assertIn("12.0 hours are left to notify clients", warnings[0].body)

    def test_recording_a_breach_tells_the_team_the_assignee_and_the_lead_at_once(self):
        Report.objects.filter(pk=self.report.pk).update(assignee=self.triager)
        self.report.refresh_from_db()
        self.record_breach()
        recorded = [m for m in mail.outbox if "Personal-data breach recorded" in m.subject]
        self.assertEqual(sorted(m.to[0] for m in recorded), ["lead@example.com", "team@example.com",
                                                             "tess@example.com"])
        self.assertEqual(recorded[0].subject, "[VDP-2026-0001] Personal-data breach recorded: notify clients by "
                                              "Sat 28 Nov 17:00 GMT, the regulator by Mon 30 Nov 17:00 GMT")
        self.assertIn("tess recorded a personal-data breach found through VDP-2026-0001", recorded[0].body)
        self.assertIn("Personal data: names, email addresses", recorded[0].body)
        self.assertIn("People affected (approximately): 1200", recorded[0].body)
        self.assertIn("Regulator notification due: Monday 30 November 2026, 17:00 GMT (72 hours)", recorded[0].body)
        self.assertNotIn("Personal-data breach", "".join(m.subject for m in self.emails_to("ada@researcher.example")))

        mail.outbox.clear()
        self.record_breach(now=SATURDAY_5PM, aware_at=at(28, 9))  # revised: the team learnt of it later
        revised = [m for m in mail.outbox if "Personal-data breach revised" in m.subject]
        self.assertEqual(len(revised), 3)
        self.assertIn("the clocks below replace the earlier ones", revised[0].body)
        self.assertIn("Client notification due: Sunday 29 November 2026, 09:00 GMT (24 hours)", revised[0].body)

    def test_no_personal_data_sends_nothing(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.report.assess_breach(self.triager, personal_data=False, now=FRIDAY_5PM)
        self.assertEqual(mail.outbox, [])

    def test_after_downtime_the_first_sweep_escalates_each_missed_clock_once(self):
        self.record_breach()
        self.sweep(at(30, 20))  # the worker was down all weekend
        self.sweep(at(30, 20, 1))
        self.assertEqual(breach_alerts(), [("client", "escalation", at(30, 20)),
                                           ("regulator", "escalation", at(30, 20))])

    def test_notified_stops_the_clock_and_the_metrics_count_it(self):
        self.record_breach()
        self.sweep(at(28, 6))  # the half-time warning
        with time_machine.travel(at(28, 10), tick=False), self.captureOnCommitCallbacks(execute=True):
            notice = self.report.record_breach_notice(self.lead, "client", reference="DPA-2026-17")
            self.report.record_breach_notice(self.lead, "regulator",
                                             not_required_reason="Encrypted at rest; the key was not exposed.")
        self.sweep_every_hour(at(28, 10, 30), at(30, 23))
        self.assertEqual(breach_alerts(), [("client", "warning", at(28, 6))])
        breach = BreachAssessment.objects.get()
        self.assertEqual((breach.client_outcome, breach.client_notified_at, breach.client_notified_by),
                         ("met", at(28, 10), self.lead))
        self.assertEqual(breach.regulator_outcome, "not_required")
        self.assertIsNone(breach.client_next_alert_at)
        self.assertFalse(notice.public)
        self.assertEqual(notice.data["reference"], "DPA-2026-17")
        figures = incidents.breach_metrics(at(30, 23), days=90)
        self.assertEqual((figures["client"]["decided"], figures["client"]["on_time_pct"]), (1, 100.0))
        self.assertEqual((figures["regulator"]["not_required"], figures["regulator"]["running"]), (1, 0))
        with self.assertRaisesMessage(TransitionError, "already recorded (notified on time)"):
            self.report.record_breach_notice(self.lead, "client", now=at(30, 23))

    def test_a_late_notice_counts_as_late(self):
        self.record_breach()
        self.report.record_breach_notice(self.lead, "client", notified_at=at(29, 9), now=at(29, 10))
        self.report.record_breach_notice(self.lead, "regulator", notified_at=at(29, 9), now=at(29, 10))
        figures = incidents.breach_metrics(at(30, 23), days=90)
        self.assertEqual((figures["client"]["decided"], figures["client"]["on_time_pct"]), (1, 0.0))
        self.assertEqual(figures["regulator"]["on_time_pct"], 100.0)

    def test_awareness_may_be_earlier_but_never_later_than_now(self):
        self.record_breach(aware_at=at(27, 9))
        self.assertEqual(BreachAssessment.objects.get().client_due_at, at(28, 9))
        with self.assertRaisesMessage(TransitionError, "cannot be later than now"):
            self.record_breach(aware_at=at(27, 18))
        with self.assertRaisesMessage(TransitionError, "categories"):
            self.record_breach(categories=" ")

    def test_no_personal_data_starts_no_clock(self):
        self.report.assess_breach(self.triager, personal_data=False, now=FRIDAY_5PM)
        self.sweep(at(30, 23))
        self.assertEqual(breach_alerts(), [])
        breach = BreachAssessment.objects.get()
        self.assertEqual((breach.client_due_at, breach.client_next_alert_at, breach.client_outcome), (None, None, ""))
        with self.assertRaisesMessage(TransitionError, "Record a breach with personal data affected first"):
            self.report.record_breach_notice(self.lead, "client", now=at(30, 23))

    def test_never_shown_to_the_reporter(self):
        from disclosure.models import StatusLink

        self.record_breach(categories="health records")
        self.sweep(SATURDAY_5PM)
        with self.captureOnCommitCallbacks(execute=True):
            self.report.acknowledge(self.triager, body="We are on it.", now=SATURDAY_5PM)
        link = StatusLink.mint(self.report)
        page, export = self.client.get(f"/status/{link}/"), self.client.get(f"/status/{link}/export.json")
        self.assertContains(page, "VDP-2026-0001")
        self.assertContains(export, "VDP-2026-0001")
        reporter_mail = " ".join(m.subject + m.body for m in self.emails_to("ada@researcher.example"))
        self.assertIn("We are on it.", reporter_mail)
        for text in (page.content.decode(), export.content.decode(), reporter_mail):
            self.assertNotIn("health records", text)
            self.assertNotIn("breach", text.lower())
        self.assertFalse(Event.objects.filter(kind__startswith="breach", public=True).exists())
        self.assertTrue(Event.objects.filter(kind="breach_escalation").exists())


class BreachAdminTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.report, _ = make_report(now=at(27, 10))
        self.login(self.triager)
        self.url = f"/admin/disclosure/report/{self.report.pk}/"

    def act(self, action, data):
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(f"{self.url}act/{action}/", data)

    @time_machine.travel(FRIDAY_5PM, tick=False)
    def test_decision_panel_records_the_breach_and_the_page_shows_both_clocks(self):
        page = self.client.get(f"{self.url}change/")
        self.assertContains(page, "Assess for a personal-data breach")
        self.assertContains(page, "Not assessed")
        response = self.act("assess_breach", {"personal_data": "yes", "aware_at": "2026-11-27T16:00",
                                              "categories": "names, addresses", "approx_subjects": "40"})
        self.assertEqual(response.status_code, 302)
        breach = BreachAssessment.objects.get()
        self.assertEqual((breach.aware_at, breach.client_due_at), (at(27, 16), at(28, 16)))
        page = self.client.get(f"{self.url}change/")
        self.assertContains(page, "Clients (24 h)")
        self.assertContains(page, "The regulator (72 h)")
        self.assertContains(page, "Running · 23 h left")
        self.assertContains(page, "Clients notified")
        self.assertContains(page, "Regulator notified")
        response = self.act("record_breach_notice", {"clock": "regulator", "reference": "ICO-123"})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(BreachAssessment.objects.get().regulator_reference, "ICO-123")
        page = self.client.get(f"{self.url}change/")
        self.assertContains(page, "personal data (names, addresses), aware 27 Nov 2026 16:00 GMT")
        self.assertContains(page, "regulator, due 30 Nov 2026 16:00 GMT, ref. ICO-123")
        self.assertContains(page, "Notified on time")

    @time_machine.travel(FRIDAY_5PM, tick=False)
    def test_bad_input_is_refused_with_the_page_not_a_500(self):
        response = self.act("assess_breach", {"personal_data": "yes", "aware_at": "2026-11-28T09:00",
                                              "categories": "names"})
        self.assertContains(response, "cannot be later than now", status_code=400)
        response = self.act("assess_breach", {"personal_data": "yes", "aware_at": "yesterday-ish"})
        self.assertEqual(response.status_code, 400)
        response = self.act("record_breach_notice", {"clock": "client"})
        self.assertContains(response, "Record a breach with personal data affected first", status_code=409)
        self.report.assess_breach(self.triager, personal_data=True, categories="names")
        response = self.act("record_breach_notice", {"clock": "client", "not_required": "on"})
        self.assertContains(response, "Give the reason", status_code=400)
        response = self.act("record_breach_notice", {"clock": "nowhere"})
        self.assertEqual(response.status_code, 400)
        self.assertFalse(BreachAssessment.objects.exclude(client_outcome="pending").exists())

    def test_an_auditor_cannot_record_a_breach(self):
        self.login(self.auditor)
        response = self.client.post(f"{self.url}act/assess_breach/", {"personal_data": "no"})
        self.assertEqual(response.status_code, 403)
        self.assertFalse(BreachAssessment.objects.exists())

    def test_queue_has_a_breach_clock_running_queue_and_badge(self):
        other, _ = make_report(now=at(27, 11), title="Nothing personal")
        with time_machine.travel(FRIDAY_5PM, tick=False):
            self.report.assess_breach(self.triager, personal_data=True, categories="names")
            other.assess_breach(self.triager, personal_data=False)
            listing = self.client.get("/admin/disclosure/report/?breach=running")
        self.assertContains(listing, "Breach clock running")
        self.assertContains(listing, self.report.tracking_id)
        self.assertNotContains(listing, other.tracking_id)
        self.assertContains(listing, "Breach clock: notify clients by Sat 28 Nov 17:00")
        with time_machine.travel(at(28, 18), tick=False):
            overdue = self.client.get("/admin/disclosure/report/?breach=overdue")
        self.assertContains(overdue, "OVERDUE: notify clients by")

    def test_metrics_page_and_staff_export_include_the_clocks(self):
        with time_machine.travel(FRIDAY_5PM, tick=False):
            self.report.assess_breach(self.triager, personal_data=True, categories="names")
            self.report.record_breach_notice(self.triager, "client", reference="mail to clients")
        lead = User.objects.create_user("lena", "lena@example.com", "a-long-password-1", is_staff=True)
        lead.groups.add(Group.objects.get(name="Lead"))
        self.login(lead)
        with time_machine.travel(at(28, 9), tick=False):
            page = self.client.get("/admin/metrics/")
            self.assertContains(page, "Clients (24 hours)")
            self.assertContains(page, "<td>100.0%</td>", html=True)
            response = self.client.post("/admin/disclosure/report/",
                                        {"action": "export_csv", "_selected_action": [self.report.pk]})
        [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
        self.assertEqual(row["breach_personal_data"], "True")
        self.assertEqual(row["breach_client_outcome"], "met")
        self.assertEqual(row["breach_client_reference"], "mail to clients")
        self.assertEqual(row["breach_regulator_outcome"], "pending")
        self.assertTrue(row["breach_regulator_due_at"].startswith("2026-11-30 17:00"))


@unittest.skipUnless(connection.vendor == "postgresql", "needs concurrent transactions (PostgreSQL)")
class ConcurrentBreachSweepTests(TransactionTestCase):
    def test_two_workers_sweeping_record_each_warning_and_escalation_once(self):
        user = User.objects.create_user("tess", "tess@example.com", "triager-password-1", is_staff=True)
        reports = [make_report(now=at(27, 10) + timedelta(minutes=i))[0] for i in range(4)]
        for report in reports:
            report.assess_breach(user, personal_data=True, categories="names", now=FRIDAY_5PM)
        for moment in [at(28, 6), at(28, 14), at(28, 18), at(29, 6), at(30, 14), at(30, 18)]:
            with time_machine.travel(moment, tick=False):
                run_at_once(lambda moment=moment: incidents.raise_due_breach_alerts(moment))
        for report in reports:
            self.assertEqual([(clock, kind) for clock, kind, _ in breach_alerts(report)], [
                ("client", "warning"), ("client", "warning"), ("client", "escalation"),
                ("regulator", "warning"), ("regulator", "warning"), ("regulator", "escalation")])
        self.assertEqual(Report.objects.count(), 4)
