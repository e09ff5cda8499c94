"""The decision panel's breach forms: each validates its input and calls one ``Report`` method.

Shaped like ``staff_forms`` (``action``, ``label``, ``done``, ``apply``, ``for_report``), but
without the message to the reporter: nothing about a breach is ever sent to them.
"""

from django import forms
from django.utils import timezone

from disclosure.incidents import CLOCK_NAMES, CLOCKS, NoticeOutcome, breach_of

PERSONAL_DATA_CHOICES = [("yes", "Personal data affected"), ("no", "No personal data")]


def _not_in_future(value, what):
    if value and value > timezone.now():
        raise forms.ValidationError(f"{what} cannot be later than now.")
    return value


class BreachAssessmentForm(forms.Form):
    action, label, done = "assess_breach", "Record breach assessment", "breach assessment recorded"
    personal_data = forms.ChoiceField(label="Personal data", choices=PERSONAL_DATA_CHOICES,
                                      widget=forms.RadioSelect)
    aware_at = forms.DateTimeField(
        label="Became aware", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Programme time. Empty: now. May be earlier (when the team first learnt of it), never later.")
    categories = forms.CharField(label="Categories of personal data", required=False, max_length=500,
                                 help_text="For example: names, email addresses, payment card numbers.")
    approx_subjects = forms.IntegerField(label="Approximate number of people", required=False, min_value=0,
                                         max_value=2_000_000_000)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "id_breach_%s")
        super().__init__(*args, **kwargs)

    def clean_aware_at(self):
        return _not_in_future(self.cleaned_data.get("aware_at"), "The time the team became aware")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("personal_data") == "yes" and not (cleaned.get("categories") or "").strip():
            self.add_error("categories", "Name the categories of personal data affected.")
        return cleaned

    def apply(self, report, actor):
        data = self.cleaned_data
        return report.assess_breach(actor, personal_data=data["personal_data"] == "yes", aware_at=data["aware_at"],
                                    categories=data["categories"], approx_subjects=data["approx_subjects"])

    @classmethod
    def for_report(cls, report):
        """Filled in with the current assessment, to revise rather than retype."""
        breach = breach_of(report)
        if breach is None:
            return cls()
        aware = timezone.localtime(breach.aware_at).strftime("%Y-%m-%dT%H:%M") if breach.aware_at else ""
        return cls(initial={"personal_data": "yes" if breach.personal_data else "no", "aware_at": aware,
                            "categories": breach.categories, "approx_subjects": breach.approx_subjects})


class BreachNoticeForm(forms.Form):
    action, label, done = "record_breach_notice", "Record notification", "breach notification recorded"
    clock = forms.ChoiceField(choices=[(c, CLOCK_NAMES[c]) for c in CLOCKS], widget=forms.HiddenInput)
    notified_at = forms.DateTimeField(label="Notified at", required=False,
                                      widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                      help_text="Programme time. Empty: now.")
    reference = forms.CharField(label="Reference", required=False, max_length=200,
                                help_text="Ticket, case or message reference (e.g. the regulator's case number).")
    not_required = forms.BooleanField(label="Notification not required", required=False)
    reason = forms.CharField(label="Why not required", required=False, max_length=5000,
                             widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Art. 33(5): document why, e.g. unlikely to result in a risk to people.")

    def clean_notified_at(self):
        return _not_in_future(self.cleaned_data.get("notified_at"), "The time of the notification")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("not_required") and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Give the reason notification is not required.")
        if not cleaned.get("not_required") and (cleaned.get("reason") or "").strip():
            self.add_error("not_required", "Tick “not required” to record a reason instead of a notification.")
        return cleaned

    @property
    def heading(self) -> str:
        clock = self.data.get("clock") if self.is_bound else self.initial.get("clock")
        return {"client": "Clients notified", "regulator": "Regulator notified"}.get(clock, self.label)

    def apply(self, report, actor):
        data = self.cleaned_data
        return report.record_breach_notice(actor, data["clock"], notified_at=data["notified_at"],
                                           reference=data["reference"],
                                           not_required_reason=data["reason"] if data["not_required"] else "")

    @classmethod
    def for_clock(cls, clock, data=None):
        return cls(data, initial={"clock": clock}, auto_id=f"id_notice_{clock}_%s")


def breach_forms(report, refused=None) -> dict:
    """The panel's breach section: the assessment form and a notice form per running clock;
    ``refused`` (a form whose decision was just refused) is shown again in its place."""
    assessment = refused if isinstance(refused, BreachAssessmentForm) else BreachAssessmentForm.for_report(report)
    breach = breach_of(report)
    notices = []
    for clock in CLOCKS:
        if breach is not None and breach.outcome(clock) == NoticeOutcome.PENDING:
            same = isinstance(refused, BreachNoticeForm) and refused.data.get("clock") == clock
            notices.append(BreachNoticeForm.for_clock(clock, refused.data if same else None))
    return {"breach_form": assessment, "notice_forms": notices, "breach": breach}


BREACH_DECISIONS = {form.action: form for form in (BreachAssessmentForm, BreachNoticeForm)}
