"""Reporters download their report and its public history as JSON."""



from tests.base import BaseTestCase, make_report


class ReporterExportTests(BaseTestCase):
    def test_reporter_downloads_their_report_as_json(self):
        report, token = make_report()
        report.add_note(self.triager, "internal only")
        report.send_message(self.triager, "visible reply")
        response = self.client.get(f"/status/{token}/export.json")
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertIn('attachment; filename="VDP-2026-0001.json"', response["Content-Disposition"])
        data = response.json()
        self.assertEqual(data["tracking_id"], "VDP-2026-0001")
        self.assertEqual(data["description"], report.description)
        messages = [event["message"] for event in data["timeline"]]
        self.assertIn("visible reply", messages)
        self.assertNotIn("internal only", response.content.decode())
