"""Transitions: each is allowed only from sensible states, stops or starts the right clock,
is recorded as an event with its actor, and tells the reporter by email and status page."""

from datetime import UTC, datetime, timedelta

import time_machine
from django.core import mail

from disclosure.models import Milestone, Report, SlaState, Status, TransitionError
from tests.base import MONDAY_10AM, BaseTestCase, end_of, make_report, report_data

TUESDAY = MONDAY_10AM + timedelta(days=1)
THURSDAY = MONDAY_10AM + timedelta(days=3)
FRIDAY = MONDAY_10AM + timedelta(days=4)



class LifecycleTestCase(BaseTestCase):
    def setUp(self):
        super().setUp()
        with self.captureOnCommitCallbacks(execute=True):
            self.report, self.token = make_report()
        mail.outbox.clear()

    def act(self, method, *args, **kwargs):
        """Run a transition as the triager; queued emails are delivered on commit."""
        with self.captureOnCommitCallbacks(execute=True):
            event = getattr(self.report, method)(self.triager, *args, **kwargs)
        self.report.refresh_from_db()
        return event

    def reporter_mail(self):
        [message] = self.emails_to("ada@researcher.example")
        mail.outbox.clear()
        return message

    def status_page(self):
        return self.client.get(f"/status/{self.token}/")


class AcknowledgeTests(LifecycleTestCase):
    def test_acknowledging_meets_the_milestone_and_tells_the_reporter(self):
        event = self.act("acknowledge", now=TUESDAY)
        self.assertEqual(self.report.status, Status.ACKNOWLEDGED)
        self.assertEqual(self.report.acknowledged_at, TUESDAY)
        self.assertEqual(self.report.ack_milestone, Milestone.MET)
        self.assertEqual((event.kind, event.actor, event.from_status, event.to_status),
                         ("acknowledged", self.triager, "new", "acknowledged"))
        message = self.reporter_mail()
        self.assertEqual(message.subject, "[VDP-2026-0001] Your report has been acknowledged")
        self.assertIn("initial assessment by the end of Monday 14 December 2026, 23:59 GMT", message.body)
        self.assertIn("Your report has been acknowledged", self.html_of(message))
        link = self.status_token_in(message.body)
        self.assertContains(self.client.get(f"/status/{link}/"), "Acknowledged. The security team is assessing it.")

    def test_acknowledging_after_the_deadline_is_met_late(self):
        self.act("acknowledge", now=FRIDAY)
        self.assertEqual(self.report.ack_milestone, Milestone.LATE)

    def test_the_automatic_receipt_does_not_count(self):
        self.assertEqual(self.report.ack_milestone, Milestone.PENDING)
        self.assertIsNone(self.report.acknowledged_at)

    def test_acknowledging_twice_is_refused_with_a_clear_message(self):
        self.act("acknowledge", now=TUESDAY)
        with self.assertRaisesMessage(TransitionError, "VDP-2026-0001 is acknowledged; it cannot be moved to"):
            self.act("acknowledge", now=TUESDAY)
        self.assertEqual(self.report.events.filter(kind="acknowledged").count(), 1)


class AssessmentTests(LifecycleTestCase):
    def test_triage_needs_a_severity(self):
        with self.assertRaisesMessage(TransitionError, "needs a severity"):
            self.act("triage", "", now=TUESDAY)
        with self.assertRaisesMessage(TransitionError, "needs a severity"):
            self.act("triage", "none", now=TUESDAY)
        self.assertEqual(Report.objects.get().status, Status.NEW)

    def test_triage_meets_both_milestones_and_tells_the_reporter_the_severity(self):
        self.act("triage", "high", now=TUESDAY)
        self.assertEqual((self.report.status, self.report.severity), (Status.TRIAGED, "high"))
        self.assertEqual((self.report.ack_milestone, self.report.assess_milestone), (Milestone.MET, Milestone.MET))
        message = self.reporter_mail()
        self.assertEqual(message.subject, "[VDP-2026-0001] Your report is confirmed as a valid vulnerability")
        self.assertIn("rated its severity as high", message.body)
        self.assertContains(self.status_page(), "Confirmed as valid, severity high")

    def test_full_lifecycle_sends_an_email_at_every_stage(self):
        subjects = []
        for method, args in [("acknowledge", ()), ("triage", ("critical",)), ("start_fix", ()),
                             ("resolve", ()), ("disclose", ())]:
            self.act(method, *args, now=TUESDAY)
            subjects.append(self.reporter_mail().subject.removeprefix("[VDP-2026-0001] "))
        self.assertEqual(subjects, [
            "Your report has been acknowledged", "Your report is confirmed as a valid vulnerability",
            "A fix is in progress", "The vulnerability has been fixed", "The vulnerability has been publicly disclosed",
        ])
        self.assertEqual((self.report.resolved_at, self.report.disclosed_at), (TUESDAY, TUESDAY))
        self.assertEqual(list(self.report.events.values_list("kind", flat=True)),
                         ["received", "acknowledged", "triaged", "fixing", "resolved", "disclosed"])

    def test_illegal_transitions_are_refused(self):
        for method, args in [("resolve", ()), ("disclose", ()), ("start_fix", ())]:
            with self.subTest(method), self.assertRaises(TransitionError):
                self.act(method, *args, now=TUESDAY)
        self.act("close", "spam", now=TUESDAY)
        for method, args in [("acknowledge", ()), ("triage", ("low",)), ("request_info", ("why?",))]:
            with self.subTest(method), self.assertRaises(TransitionError):
                self.act(method, *args, now=TUESDAY)

    def test_resolution_mentions_the_requested_credit(self):
        self.act("triage", "low", now=TUESDAY)
        self.act("resolve", now=TUESDAY)
        self.assertIn("we will credit you as ada", mail.outbox[-1].body)


class ClosingTests(LifecycleTestCase):
    def test_closing_with_an_outcome_and_an_edited_message(self):
        self.act("close", "informative", body="Thanks, this is **expected behaviour**.", now=TUESDAY)
        self.assertEqual(self.report.status, Status.INFORMATIVE)
        self.assertEqual(self.report.closed_at, TUESDAY)
        self.assertEqual(self.report.assess_milestone, Milestone.MET)
        message = self.reporter_mail()
        self.assertEqual(message.subject, "[VDP-2026-0001] Your report has been closed: informative")
        self.assertIn("Thanks, this is **expected behaviour**.", message.body)
        self.assertIn("<strong>expected behaviour</strong>", self.html_of(message))
        page = self.status_page()
        self.assertContains(page, "Closed: informative")
        self.assertContains(page, "<strong>expected behaviour</strong>", html=True)
        self.assertContains(page, "This report is closed.")

    def test_a_duplicate_must_name_the_original(self):
        original, _ = make_report(title="Original")
        with self.assertRaisesMessage(TransitionError, "must name the original"):
            self.act("close", "duplicate", now=TUESDAY)
        with self.assertRaisesMessage(TransitionError, "duplicate of itself"):
            self.act("close", "duplicate", duplicate_of=self.report, now=TUESDAY)
        with self.assertRaisesMessage(TransitionError, "Only a duplicate"):
            self.act("close", "spam", duplicate_of=original, now=TUESDAY)
        self.act("close", "duplicate", duplicate_of=original, now=TUESDAY)
        self.assertEqual(self.report.duplicate_of, original)
        self.assertIn(f"It duplicates an earlier report ({original.tracking_id}).", self.reporter_mail().body)

    def test_unknown_outcome_is_refused(self):
        with self.assertRaises(TransitionError):
            self.act("close", "resolved", now=TUESDAY)


class NeedsMoreInfoTests(LifecycleTestCase):
    def test_question_pauses_the_clock_and_the_answer_extends_the_deadline(self):
        self.act("acknowledge", now=TUESDAY)
        self.assertEqual(self.report.assess_due_at, end_of(2026, 12, 14))
        mail.outbox.clear()
        self.act("request_info", "Which browser did you use?", now=TUESDAY)
        self.assertEqual(self.report.status, Status.NEEDS_INFO)
        self.assertIsNone(self.report.assess_next_alert_at)
        self.assertEqual(self.report.sla_state(TUESDAY), SlaState.PAUSED)
        question = self.reporter_mail()
        self.assertEqual(question.subject, "[VDP-2026-0001] We have a question about your report")
        self.assertIn("Which browser did you use?", question.body)
        self.assertContains(self.status_page(), "Paused until you answer our question")

        # The reporter answers on Thursday: Wednesday and Thursday were spent waiting.
        with time_machine.travel(THURSDAY, tick=False), self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/status/{self.token}/", {"body": "Firefox 140."})
        self.assertEqual(response.status_code, 302)
        self.report.refresh_from_db()
        self.assertEqual(self.report.status, Status.ACKNOWLEDGED)
        self.assertEqual(self.report.assess_due_at, end_of(2026, 12, 16))
        self.assertIsNotNone(self.report.assess_next_alert_at)
        [team] = self.emails_to("security@localhost")
        self.assertEqual(team.subject, "[VDP-2026-0001] The reporter answered your question")
        self.assertIn("now due Wednesday 16 December 2026, 23:59 GMT", team.body)

    def test_a_question_before_acknowledging_counts_as_acknowledgement(self):
        self.act("request_info", "Can you share the request?", now=TUESDAY)
        self.assertEqual(self.report.ack_milestone, Milestone.MET)
        self.assertEqual(self.report.status_before_info, Status.ACKNOWLEDGED)

    def test_triaging_while_waiting_ends_the_pause_at_the_assessment(self):
        self.act("request_info", "More detail?", now=TUESDAY)
        self.act("triage", "medium", now=THURSDAY)
        self.assertEqual(self.report.assess_due_at, end_of(2026, 12, 16))
        self.assertEqual(self.report.status_before_info, "")

    def test_question_must_not_be_empty(self):
        with self.assertRaises(TransitionError):
            self.act("request_info", "   ", now=TUESDAY)


class MessagesAndNotesTests(LifecycleTestCase):
    def test_team_message_is_emailed_and_shown(self):
        self.act("send_message", "We are looking into it.", now=TUESDAY)
        message = self.reporter_mail()
        self.assertEqual(message.subject, "[VDP-2026-0001] New message from the security team")
        self.assertIn("We are looking into it.", message.body)
        self.assertContains(self.status_page(), "We are looking into it.")
        self.assertEqual(self.report.status, Status.NEW)  # a message is not an acknowledgement

    def test_internal_note_is_never_shown_to_the_reporter(self):
        self.act("add_note", "Reporter is also on our bug bounty list.", now=TUESDAY)
        self.assertEqual(mail.outbox, [])
        self.assertNotContains(self.status_page(), "bug bounty")
        self.assertEqual(self.report.events.get(kind="note").actor, self.triager)


class AnonymousReporterTests(BaseTestCase):
    def test_anonymous_reporter_sees_every_update_on_the_status_page(self):
        report, token = make_report(**{**report_data(), "reporter_email": ""})
        mail.outbox.clear()
        with self.captureOnCommitCallbacks(execute=True):
            report.acknowledge(self.triager, now=TUESDAY)
            report.send_message(self.triager, "Thanks for the report.", now=TUESDAY)
        self.assertEqual(mail.outbox, [])
        page = self.client.get(f"/status/{token}/")
        self.assertContains(page, "Acknowledged")
        self.assertContains(page, "Thanks for the report.")


class SlaStateTests(BaseTestCase):
    def test_badges_follow_the_running_milestone(self):
        report, _ = make_report()  # Monday; ack due Thursday 23:59
        self.assertEqual(report.sla_state(TUESDAY), SlaState.ON_TRACK)
        self.assertEqual(report.sla_state(datetime(2026, 12, 2, 12, 0, tzinfo=UTC)), SlaState.DUE_SOON)  # Wed
        self.assertEqual(report.sla_state(datetime(2026, 12, 3, 0, 30, tzinfo=UTC)), SlaState.DUE_TODAY)
        self.assertEqual(report.sla_state(FRIDAY), SlaState.OVERDUE)
        report.acknowledge(self.triager, now=FRIDAY)
        self.assertEqual(report.sla_state(FRIDAY), SlaState.ON_TRACK)  # now the assessment runs
        report.triage(self.triager, "low", now=FRIDAY)
        self.assertEqual(report.sla_state(FRIDAY), SlaState.MET_LATE)


class WithdrawAndReopenTests(LifecycleTestCase):
    def test_the_reporter_withdraws_from_the_status_page_and_the_team_is_told(self):
        url = f"/status/{self.token}/withdraw/"
        unconfirmed = self.client.post(url, follow=True)
        # An error, styled and announced as one (not as a green success message).
        self.assertContains(unconfirmed, '<p class="message error" role="alert">Tick the box to confirm', count=1)
        self.assertEqual(Report.objects.get().status, Status.NEW)
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post(url, {"confirm": "withdraw"})
        report = Report.objects.get()
        self.assertEqual(report.status, Status.WITHDRAWN)
        self.assertEqual((report.ack_milestone, report.assess_milestone), (Milestone.NOT_NEEDED, Milestone.NOT_NEEDED))
        self.assertIsNone(report.ack_next_alert_at)
        [team] = self.emails_to("security@localhost")
        self.assertEqual(team.subject, "[VDP-2026-0001] The reporter withdrew the report")
        self.assertContains(self.status_page(), "Withdrawn at your request.")

    def test_staff_reopen_a_closed_report_and_the_reporter_hears_of_it(self):
        with self.assertRaises(TransitionError):
            self.act("reopen", now=TUESDAY)
        self.act("close", "not_applicable", now=TUESDAY)
        mail.outbox.clear()
        self.act("reopen", now=THURSDAY, body="We found a way to reproduce it after all.")
        self.assertEqual((self.report.status, self.report.closed_at), (Status.ACKNOWLEDGED, None))
        message = self.reporter_mail()
        self.assertEqual(message.subject, "[VDP-2026-0001] Your report has been reopened")
        self.assertIn("We found a way to reproduce it after all.", message.body)


@time_machine.travel(MONDAY_10AM, tick=False)
class SeverityRuleTests(BaseTestCase):
    def test_severity_can_only_be_changed_on_a_valid_report(self):
        report, _ = make_report()
        with self.assertRaisesMessage(TransitionError, "triage it as valid"):
            report.rate(self.triager, "critical")
        report.close(self.triager, "spam")
        with self.assertRaises(TransitionError):
            report.rate(self.triager, "high")
        self.assertEqual(Report.objects.get().severity, "")
