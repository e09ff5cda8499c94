"""Forms behind the decision panel on the admin's report page. Each one validates its
input and calls exactly one ``Report`` transition."""

from django import forms
from django.template.loader import render_to_string

from disclosure.models import CLOSING_OUTCOMES, Report, Severity, Status, TransitionError

MESSAGE_HELP = "Emailed to the reporter and shown on their status page. Markdown allowed."


class DecisionForm(forms.Form):
    action = ""  # the Report method this form calls
    label = ""  # the button
    done = ""  # the confirmation: "VDP-2026-0001 acknowledged."
    body = forms.CharField(label="Message to the reporter", required=False, max_length=50_000,
                           widget=forms.Textarea(attrs={"rows": 3}), help_text="Optional. " + MESSAGE_HELP)

    def __init__(self, *args, **kwargs):
        # Several decision forms share one page: give each its own element ids.
        kwargs.setdefault("auto_id", f"id_{self.action}_%s")
        super().__init__(*args, **kwargs)

    def apply(self, report: Report, actor):
        return getattr(report, self.action)(actor, body=self.cleaned_data["body"])

    @classmethod
    def for_report(cls, report: Report):
        """The unbound form the decision panel shows for ``report``."""
        return cls()


class AcknowledgeForm(DecisionForm):
    action, label, done = "acknowledge", "Acknowledge", "acknowledged"


class StartFixForm(DecisionForm):
    action, label, done = "start_fix", "Start fixing", "moved to fixing"


class ResolveForm(DecisionForm):
    action, label, done = "resolve", "Resolve", "resolved"


class DiscloseForm(DecisionForm):
    action, label, done = "disclose", "Disclose", "disclosed"
    confirm = forms.BooleanField(
        label="The vulnerability is now public", required=True,
        help_text="Disclosing tells the reporter the vulnerability has been made public; it cannot be undone.",
        error_messages={"required": "Tick the box to confirm the vulnerability is now public."})


class ReopenForm(DecisionForm):
    action, label, done = "reopen", "Reopen", "reopened"


class RequestInfoForm(DecisionForm):
    action, label, done = "request_info", "Ask for more information", "question sent to the reporter"
    body = forms.CharField(label="Question for the reporter", max_length=50_000,
                           widget=forms.Textarea(attrs={"rows": 3}),
                           help_text="Pauses the assessment clock until the reporter answers.")

    def apply(self, report, actor):
        return report.request_info(actor, self.cleaned_data["body"])


SEVERITY_CHOICES = [("", "Choose a severity")] + [(v, label) for v, label in Severity.choices if v != Severity.NONE]
CVSS_HELP = "Or a CVSS 3.1/4.0 vector, e.g. CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H; it decides the severity."


class SeverityFields(forms.Form):
    severity = forms.ChoiceField(choices=SEVERITY_CHOICES, required=False)
    cvss_vector = forms.CharField(label="CVSS vector", required=False, max_length=200, help_text=CVSS_HELP)

    def clean(self):
        cleaned = super().clean()
        vector = cleaned.get("cvss_vector", "").strip()
        if vector:
            from disclosure.severity import score_vector

            try:
                score_vector(vector)
            except ValueError as error:
                self.add_error("cvss_vector", str(error))
        elif not cleaned.get("severity"):
            self.add_error("severity", "Choose a severity or give a CVSS vector.")
        return cleaned


class TriageForm(SeverityFields, DecisionForm):
    action, label, done = "triage", "Triage as valid", "triaged as valid"

    def apply(self, report, actor):
        data = self.cleaned_data
        return report.triage(actor, data["severity"], cvss_vector=data["cvss_vector"], body=data["body"])


class RateForm(SeverityFields):
    action, label, done = "rate", "Change severity", "severity changed"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "id_rate_%s")
        super().__init__(*args, **kwargs)

    def apply(self, report, actor):
        return report.rate(actor, self.cleaned_data["severity"], cvss_vector=self.cleaned_data["cvss_vector"])

    @classmethod
    def for_report(cls, report):
        """Filled in with the current severity and vector, to change rather than retype."""
        return cls(initial={"severity": report.severity, "cvss_vector": report.cvss_vector})


class CloseForm(DecisionForm):
    action, label, done = "close", "Close", "closed"
    outcome = forms.ChoiceField(choices=[(s.value, s.label) for s in Status if s in CLOSING_OUTCOMES],
                                widget=forms.HiddenInput)
    duplicate_of = forms.CharField(label="Original report (tracking ID)", required=False, max_length=40)

    def clean_duplicate_of(self):
        tracking_id = self.cleaned_data["duplicate_of"].strip().upper()
        if not tracking_id:
            return None
        try:
            return Report.objects.get(tracking_id=tracking_id)
        except Report.DoesNotExist:
            raise forms.ValidationError(f"There is no report {tracking_id}.") from None

    def apply(self, report, actor):
        data = self.cleaned_data
        return report.close(actor, data["outcome"], body=data["body"], duplicate_of=data["duplicate_of"])

    @classmethod
    def for_outcome(cls, report, outcome, data=None):
        """The form for ``outcome``: unbound with the templated reply, ready to edit, or
        bound to ``data`` (a refused attempt shown again)."""
        return cls(data, initial={"outcome": outcome, "body": closing_reply(report, outcome)},
                   auto_id=f"id_close_{outcome}_%s")


def closing_reply(report, outcome) -> str:
    """The templated reply for a closing outcome (``templates/disclosure/closing/``): what the
    decision panel offers to edit, and what a bulk close sends."""
    return render_to_string(f"disclosure/closing/{outcome}.txt", {"report": report}).strip()


class MessageForm(DecisionForm):
    action, label, done = "send_message", "Send message", "message sent to the reporter"
    body = forms.CharField(label="Message to the reporter", max_length=50_000,
                           widget=forms.Textarea(attrs={"rows": 4}), help_text=MESSAGE_HELP)

    def apply(self, report, actor):
        return report.send_message(actor, self.cleaned_data["body"])


class NoteForm(DecisionForm):
    action, label, done = "add_note", "Add internal note", "internal note added"
    body = forms.CharField(label="Internal note", max_length=50_000, widget=forms.Textarea(attrs={"rows": 3}),
                           help_text="Only the team sees notes.")

    def apply(self, report, actor):
        return report.add_note(actor, self.cleaned_data["body"])


DECISIONS = {form.action: form for form in (
    AcknowledgeForm, RequestInfoForm, TriageForm, RateForm, StartFixForm, ResolveForm, DiscloseForm, CloseForm,
    MessageForm, NoteForm, ReopenForm)}

__all__ = ["DECISIONS", "CloseForm", "TransitionError", "closing_reply"]
