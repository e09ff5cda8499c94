"""Outbound webhooks: P1 pages at once, signed payloads without reporter content, retries
with backoff, the admin's retry, and no SSRF. Deliveries go to a real HTTPS receiver on
loopback (tests/webhook_receiver.py) that verifies the Standard Webhooks signature."""

import json
from datetime import timedelta

import time_machine
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import override_settings

from disclosure import tasks, webhooks
from disclosure.models import Report
from disclosure.webhooks import WebhookDelivery, WebhookEndpoint
from tests.base import MONDAY_10AM, BaseTestCase, make_report, report_data
from tests.webhook_receiver import Receiver

TUESDAY_9AM = MONDAY_10AM + timedelta(hours=23)
ALL_EVENTS = list(webhooks.EventType.values)


def endpoint(url, *, events=ALL_EVENTS, fmt="generic", include_title=False) -> WebhookEndpoint:
    hook = WebhookEndpoint(name="security alerts", url=url, events=list(events), format=fmt,
                           include_title=include_title)
    hook.full_clean()
    hook.save()
    return hook


def reporter_values() -> list[str]:
    """What the reporter wrote or gave about themselves (beyond the title)."""
    data = report_data()
    return [data[name] for name in ("description", "asset", "steps_to_reproduce", "impact", "reporter_name",
                                    "reporter_email", "credit_name", "vulnerability_type")]


@time_machine.travel(MONDAY_10AM, tick=False)
@override_settings(P1_ALERT_EMAIL="oncall@example.com", SECURITY_TEAM_EMAIL="team@example.com")
class DeliveryTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        with self.captureOnCommitCallbacks(execute=True):
            self.report, _ = make_report()
        mail.outbox.clear()

    def triage_in_admin(self, severity="critical"):
        self.login(self.triager)
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/admin/disclosure/report/{self.report.pk}/act/triage/",
                                        {"severity": severity, "body": "Confirmed."})
        self.assertEqual(response.status_code, 302)

    def sweep_at(self, moment):
        with time_machine.travel(moment, tick=False), self.captureOnCommitCallbacks(execute=True):
            return tasks.sweep(moment)

    def test_a_p1_triage_reaches_the_receiver_in_the_first_queue_pass(self):
        with Receiver() as receiver, receiver.trusted():
            hook = endpoint(receiver.url, events=["report.p1", "report.triaged"])
            receiver.secret = hook.secret
            self.triage_in_admin("critical")  # no sweep runs in this test
        self.assertEqual(sorted(receiver.types()), ["report.p1", "report.triaged"])
        for request in receiver.requests:
            self.assertEqual(request["error"], "")  # the signature verified with the library
            self.assertEqual(request["verified"], request["json"])
            self.assertTrue(request["headers"]["webhook-id"].startswith("msg_"))
            self.assertEqual(request["path"], "/hooks/security")
        page = next(r["json"] for r in receiver.accepted() if r["json"]["type"] == "report.p1")
        self.assertEqual(page["data"]["tracking_id"], "VDP-2026-0001")
        self.assertEqual(page["data"]["priority"], "P1")
        self.assertEqual(page["data"]["status"], "triaged")
        self.assertTrue(page["data"]["staff_url"].endswith(f"/admin/disclosure/report/{self.report.pk}/change/"))
        self.assertEqual(page["data"]["deadlines"]["acknowledge_state"], "met")
        self.assertEqual(set(WebhookDelivery.objects.values_list("state", flat=True)), {"sent"})
        [page_email] = self.emails_to("oncall@example.com")
        self.assertEqual(page_email.subject, "[VDP-2026-0001] P1: critical vulnerability, act now")

    def test_raising_to_p1_pages_once_and_a_p2_does_not_page(self):
        with Receiver() as receiver, receiver.trusted():
            endpoint(receiver.url, events=["report.p1"])
            self.triage_in_admin("high")
            self.assertEqual(receiver.types(), [])
            with self.captureOnCommitCallbacks(execute=True):
                self.report.rate(self.lead, "critical")
            with self.captureOnCommitCallbacks(execute=True):
                self.report.rate(self.lead, "", cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
        self.assertEqual(receiver.types(), ["report.p1"])
        self.assertEqual(receiver.accepted()[0]["json"]["data"]["from_priority"], "P2")
        self.assertEqual(len(self.emails_to("oncall@example.com")), 1)

    def test_a_receiver_that_fails_three_times_gets_each_event_once_after_retries(self):
        with Receiver(plan=[500, 500, 500]) as receiver, receiver.trusted():
            hook = endpoint(receiver.url, events=["report.p1", "report.triaged"])
            receiver.secret = hook.secret
            self.triage_in_admin("critical")
            self.assertEqual(receiver.accepted(), [])
            # Backoff 30 s, 60 s, 120 s (WEBHOOK_RETRY_SECONDS doubling): sweep each minute for 10 minutes.
            for minute in range(1, 11):
                self.sweep_at(MONDAY_10AM + timedelta(minutes=minute))
        ids = [r["headers"]["webhook-id"] for r in receiver.accepted()]
        self.assertEqual(sorted(receiver.types()), ["report.p1", "report.triaged"])
        self.assertEqual(len(ids), len(set(ids)), "each event exactly once")
        self.assertEqual(len(receiver.requests), 5)  # three 500s (retried), then both accepted
        for delivery in WebhookDelivery.objects.all():
            self.assertEqual(delivery.state, "sent")
            attempts = [r for r in receiver.requests if r["headers"]["webhook-id"] == delivery.message_id]
            self.assertEqual([r["status"] for r in attempts][-1], 200)
            self.assertEqual(delivery.attempts, len(attempts))
        self.assertEqual(sum(d.attempts for d in WebhookDelivery.objects.all()), 5)

    @override_settings(WEBHOOK_MAX_ATTEMPTS=2)
    def test_a_final_failure_is_shown_in_the_admin_and_can_be_retried(self):
        with Receiver(plan=[503, 503]) as receiver, receiver.trusted():
            hook = endpoint(receiver.url, events=["report.p1"])
            receiver.secret = hook.secret
            self.triage_in_admin("critical")
            self.sweep_at(MONDAY_10AM + timedelta(minutes=5))
            delivery = WebhookDelivery.objects.get()
            self.assertEqual((delivery.state, delivery.attempts, delivery.response_status), ("failed", 2, 503))
            self.assertIn("HTTP 503", delivery.last_error)
            self.assertEqual(self.sweep_at(MONDAY_10AM + timedelta(hours=5))["webhooks"], 0)  # given up
            self.login(self.lead)
            listing = self.client.get("/admin/disclosure/webhookdelivery/?state__exact=failed")
            self.assertContains(listing, "report.p1")
            with self.captureOnCommitCallbacks(execute=True):
                self.client.post("/admin/disclosure/webhookdelivery/",
                                 {"action": "retry_now", "_selected_action": [delivery.pk]})
        delivery.refresh_from_db()
        self.assertEqual(delivery.state, "sent")
        self.assertEqual(receiver.types(), ["report.p1"])

    def test_slack_and_teams_get_their_own_formats(self):
        with Receiver() as slack, Receiver() as teams, slack.trusted():
            endpoint(slack.url, events=["report.received"], fmt="slack")
            endpoint(teams.url, events=["report.received"], fmt="teams")
            with override_settings(WEBHOOK_CA_BUNDLE=teams.ca_file):
                with self.captureOnCommitCallbacks(execute=True):
                    make_report(title="Second")
            # Two receivers, two CAs: the one trusted while delivering decides which got through.
            for pk in WebhookDelivery.objects.filter(state="pending").values_list("pk", flat=True):
                WebhookDelivery.objects.filter(pk=pk).update(next_attempt_at=MONDAY_10AM)
                webhooks.deliver(pk, MONDAY_10AM + timedelta(hours=1))
        [slack_message] = slack.accepted()
        self.assertIn("[VDP-2026-0002]: New report", slack_message["json"]["text"])
        self.assertIn("|Open in the triage queue>", slack_message["json"]["text"])
        self.assertNotIn("webhook-signature", slack_message["headers"])
        [teams_message] = teams.accepted()
        card = teams_message["json"]["attachments"][0]
        self.assertEqual(card["contentType"], "application/vnd.microsoft.card.adaptive")
        self.assertIn("VDP-2026-0002", card["content"]["body"][0]["text"])

    def test_payloads_carry_no_reporter_content_and_the_title_only_when_ticked(self):
        with Receiver() as receiver, receiver.trusted():
            endpoint(receiver.url)
            titled = endpoint(receiver.url, events=["report.triaged"], include_title=True)
            self.triage_in_admin("critical")
            with self.captureOnCommitCallbacks(execute=True):
                self.report.add_reporter_message("Here is the customer export: alice@victim.example")
                self.report.close(self.triager, "informative")
        self.assertEqual(len(receiver.accepted()), 5)  # triaged x2, p1, reporter message, closed
        for request in receiver.accepted():
            body = request["body"].decode()
            for value in [*reporter_values(), "alice@victim.example"]:
                self.assertNotIn(value, body)
            with_title = request["json"]["type"] == "report.triaged" and "title" in request["json"]["data"]
            self.assertEqual(report_data()["title"] in body, with_title)
        self.assertEqual(WebhookDelivery.objects.filter(endpoint=titled).get().payload["data"]["title"],
                         report_data()["title"])

    def test_a_new_signing_secret_is_accepted_by_a_receiver_still_on_the_old_one_for_a_day(self):
        with Receiver() as receiver, receiver.trusted():
            hook = endpoint(receiver.url, events=["report.received"])
            receiver.secret = hook.secret  # the receiver knows only the secret before the rotation
            self.login(self.lead)
            response = self.client.post("/admin/disclosure/webhookendpoint/", {
                "action": "new_signing_secret", "_selected_action": [hook.pk]}, follow=True)
            self.assertContains(response, "give it to the receiver within 24 hours")
            hook.refresh_from_db()
            self.assertNotEqual(hook.secret, receiver.secret)
            self.assertContains(self.client.get(f"/admin/disclosure/webhookendpoint/{hook.pk}/change/"),
                                "messages are also signed with the former secret")
            with self.captureOnCommitCallbacks(execute=True):
                make_report(title="During the overlap")
            during = receiver.requests[-1]
            self.assertEqual((during["status"], during["error"]), (200, ""))
            self.assertEqual(len(during["headers"]["webhook-signature"].split()), 2)  # "v1,<new> v1,<old>"

            later = MONDAY_10AM + timedelta(hours=25)  # the overlap is over: only the new secret signs
            with time_machine.travel(later, tick=False), self.captureOnCommitCallbacks(execute=True):
                make_report(now=later, title="After the overlap")
            self.assertEqual(receiver.requests[-1]["status"], 401)
            self.assertEqual(len(receiver.requests[-1]["headers"]["webhook-signature"].split()), 1)
            receiver.secret = hook.secret  # the receiver is given the new secret; the refused one is retried
            self.sweep_at(later + timedelta(minutes=5))
        self.assertEqual((receiver.requests[-1]["status"], receiver.requests[-1]["error"]), (200, ""))
        self.assertEqual(set(WebhookDelivery.objects.values_list("state", flat=True)), {"sent"})

    def test_breach_recorded_and_each_notification_reach_the_receiver(self):
        with Receiver() as receiver, receiver.trusted():
            receiver.secret = endpoint(receiver.url, events=["breach.recorded", "breach.notified"]).secret
            with self.captureOnCommitCallbacks(execute=True):
                self.report.assess_breach(self.triager, personal_data=True, categories="names", now=MONDAY_10AM)
            for hours, notice in ((2, {"reference": "DPA-1"}), (3, {"not_required_reason": "Encrypted; key safe."})):
                with time_machine.travel(MONDAY_10AM + timedelta(hours=hours), tick=False), \
                        self.captureOnCommitCallbacks(execute=True):
                    self.report.record_breach_notice(self.lead, "client" if hours == 2 else "regulator", **notice)
        recorded, client, regulator = [request["json"] for request in receiver.accepted()]
        self.assertEqual([recorded["type"], client["type"], regulator["type"]],
                         ["breach.recorded", "breach.notified", "breach.notified"])
        self.assertEqual({key: client["data"][key] for key in ("clock", "outcome", "notified_at", "due")},
                         {"clock": "client", "outcome": "met", "notified_at": "2026-11-30T12:00:00Z",
                          "due": "2026-12-01T10:00:00Z"})
        self.assertEqual((regulator["data"]["outcome"], regulator["data"]["notified_at"]), ("not_required", None))
        self.assertNotIn("DPA-1", json.dumps(client))  # the team's reference stays in the portal
        self.assertEqual(webhooks.headline(client), "[VDP-2026-0001]: Breach: clients notified on time")
        self.assertEqual(webhooks.headline(regulator), "[VDP-2026-0001]: Breach: notifying the regulator not required")

    def test_tls_is_verified_for_the_host_name_not_the_address(self):
        with Receiver(cert_hosts=["other.example"]) as receiver, receiver.trusted():
            endpoint(receiver.url, events=["report.p1"])
            self.triage_in_admin("critical")
        delivery = WebhookDelivery.objects.get()
        self.assertEqual((delivery.state, delivery.attempts), ("pending", 1))
        self.assertIn("SSL", delivery.last_error)
        self.assertEqual(receiver.requests, [])

    def test_redirects_are_not_followed(self):
        with Receiver(plan=[302], redirect_to="https://127.0.0.1:1/elsewhere") as receiver, receiver.trusted():
            endpoint(receiver.url, events=["report.p1"])
            self.triage_in_admin("critical")
        delivery = WebhookDelivery.objects.get()
        self.assertIn("HTTP 302 (redirects are not followed)", delivery.last_error)
        self.assertEqual(len(receiver.requests), 1)

    def test_no_endpoint_no_delivery_and_an_inactive_one_gets_nothing(self):
        hook = WebhookEndpoint.objects.create(name="off", url="https://hooks.example.com/x", events=ALL_EVENTS,
                                              active=False)
        self.triage_in_admin("critical")
        self.assertFalse(WebhookDelivery.objects.filter(endpoint=hook).exists())


@override_settings(DEBUG=False, WEBHOOK_ALLOW_PRIVATE_ADDRESSES=False)
class AddressGuardTests(BaseTestCase):
    """Production settings: no SSRF from the admin."""

    REFUSED = ["https://127.0.0.1/hook", "https://10.0.0.1/hook", "https://[::1]/hook", "https://localhost/hook",
               "https://169.254.169.254/latest/meta-data", "https://192.168.1.10/", "https://[fd00::1]/",
               "https://[::ffff:127.0.0.1]/", "http://hooks.example.com/hook", "ftp://hooks.example.com/",
               "https://user:pass@hooks.example.com/hook"]

    def test_private_loopback_and_plain_http_urls_are_refused(self):
        for url in self.REFUSED:
            with self.subTest(url=url), self.assertRaises(ValidationError):
                WebhookEndpoint(name="x", url=url, events=["report.p1"]).full_clean()
        WebhookEndpoint(name="ok", url="https://hooks.slack.com/services/T0/B0/x", events=["report.p1"]).full_clean()

    def test_a_lead_is_refused_in_the_admin(self):
        lead = User.objects.create_user("lena", "lena@example.com", "a-long-password-1", is_staff=True)
        lead.groups.add(Group.objects.get(name="Lead"))
        self.login(lead)
        for url in ["https://127.0.0.1/hook", "https://10.0.0.1/hook"]:
            response = self.client.post("/admin/disclosure/webhookendpoint/add/", {
                "name": "x", "url": url, "format": "generic", "events": ["report.p1"], "active": "on"})
            self.assertContains(response, "non-public address")
        self.assertFalse(WebhookEndpoint.objects.exists())
        response = self.client.post("/admin/disclosure/webhookendpoint/add/", {
            "name": "Slack", "url": "https://hooks.slack.com/services/T0/B0/x", "format": "slack",
            "events": ["report.p1", "breach.escalation"], "active": "on"})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(WebhookEndpoint.objects.get().events, ["report.p1", "breach.escalation"])

    def test_only_a_lead_configures_webhooks(self):
        triager = User.objects.create_user("tom", "tom@example.com", "a-long-password-1", is_staff=True)
        triager.groups.add(Group.objects.get(name="Triager"))
        self.login(triager)
        self.assertEqual(self.client.get("/admin/disclosure/webhookendpoint/add/").status_code, 403)
        self.assertEqual(self.client.get("/admin/disclosure/webhookdelivery/").status_code, 200)

    def test_delivery_rechecks_the_address_and_never_connects_to_a_refused_one(self):
        # A row written past the form (or before the policy changed) is refused when it is sent.
        hook = WebhookEndpoint.objects.create(name="x", url="https://10.0.0.1/hook", events=["report.received"])
        with self.captureOnCommitCallbacks(execute=True):
            make_report()
        delivery = WebhookDelivery.objects.get(endpoint=hook)
        self.assertEqual((delivery.state, delivery.attempts), ("failed", 1))
        self.assertIn("non-public address", delivery.last_error)

    def test_a_name_that_resolves_to_loopback_is_refused(self):
        with self.assertRaisesMessage(webhooks.WebhookRefused, "resolves to"):
            webhooks.resolve_checked("localhost", 443)

    def test_address_policy(self):
        for address in ["127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                        "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1", "224.0.0.1"]:
            self.assertFalse(webhooks.address_allowed(address), address)
        for address in ["93.184.216.34", "2606:4700::1111"]:
            self.assertTrue(webhooks.address_allowed(address), address)
        with override_settings(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True):
            self.assertTrue(webhooks.address_allowed("10.0.0.1"))


class SignatureTests(BaseTestCase):
    def test_generic_payload_is_signed_as_standard_webhooks_specifies(self):
        from standardwebhooks import Webhook

        hook = WebhookEndpoint.objects.create(name="x", url="https://hooks.example.com/x", events=ALL_EVENTS)
        with time_machine.travel(MONDAY_10AM, tick=False):
            make_report()
            delivery = WebhookDelivery.objects.get()
            body, headers = webhooks.render(delivery, MONDAY_10AM)
            self.assertEqual(headers["webhook-timestamp"], str(int(MONDAY_10AM.timestamp())))
            self.assertEqual(Webhook(hook.secret).verify(body, headers), json.loads(body))
            headers["webhook-signature"] = Webhook(webhooks.new_secret()).sign(
                headers["webhook-id"], MONDAY_10AM, body.decode())
            with self.assertRaises(Exception):  # noqa: B017 - the library's own error
                Webhook(hook.secret).verify(body, headers)
        self.assertEqual(json.loads(body)["type"], "report.received")
        self.assertEqual(Report.objects.count(), 1)

    def test_an_endpoint_switched_off_elsewhere_gets_nothing_though_this_process_remembers_it(self):
        hook = WebhookEndpoint.objects.create(name="x", url="https://hooks.example.com/x", events=ALL_EVENTS)
        make_report()  # this process now remembers the endpoint for a minute
        WebhookEndpoint.objects.filter(pk=hook.pk).update(active=False)  # as another process would, no signal
        make_report()
        self.assertEqual(WebhookDelivery.objects.count(), 1)
