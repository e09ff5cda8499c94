"""The admin's incident pieces: the breach queue filter and badge, the breach clocks on the
report page, and the outgoing webhooks (endpoints, a Lead's; deliveries, with a retry action)."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html

from disclosure import rotation
from disclosure.incidents import CLOCK_WHO, CLOCKS, NoticeOutcome, breach_of, clock_hours
from disclosure.webhooks import SECRET_OVERLAP, EventType, Format, WebhookDelivery, WebhookEndpoint, send_after_commit

BREACH_QUEUE = ("Breach clock running", "breach=running")


class BreachFilter(admin.SimpleListFilter):
    title = "breach"
    parameter_name = "breach"

    def lookups(self, request, model_admin):
        return [("running", "Breach clock running"), ("overdue", "Breach notification overdue"),
                ("personal_data", "Personal-data breach (any)"), ("none", "Assessed: no personal data")]

    def queryset(self, request, queryset):
        pending = Q(breach__client_outcome=NoticeOutcome.PENDING) | Q(breach__regulator_outcome=NoticeOutcome.PENDING)
        now = timezone.now()
        value = self.value()
        if value == "running":
            return queryset.filter(pending)
        if value == "overdue":
            return queryset.filter(Q(breach__client_outcome=NoticeOutcome.PENDING, breach__client_due_at__lte=now)
                                   | Q(breach__regulator_outcome=NoticeOutcome.PENDING,
                                       breach__regulator_due_at__lte=now))
        if value == "personal_data":
            return queryset.filter(breach__personal_data=True)
        if value == "none":
            return queryset.filter(breach__personal_data=False)
        return queryset


@admin.display(description="breach")
def breach_badge(report):
    """The queue's badge while a breach clock runs: the nearest pending notification."""
    breach = breach_of(report)
    if breach is None or not breach.running:
        return ""
    now = timezone.now()
    clock = min((c for c in CLOCKS if breach.outcome(c) == NoticeOutcome.PENDING), key=breach.due)
    state = breach.clock_state(clock, now)
    due = timezone.localtime(breach.due(clock))
    label = "OVERDUE" if state == "overdue" else "Breach clock"
    return format_html('<span class="sla sla-{}">{}: notify {} by {}</span>',
                       "overdue" if state == "overdue" else "due_today", label, CLOCK_WHO[clock],
                       f"{due:%a %d %b %H:%M}")


def breach_clocks(report) -> str:
    """The report page's "Breach clocks" section."""
    breach = breach_of(report)
    now = timezone.now()
    clocks = []
    if breach is not None and breach.personal_data:
        for clock in CLOCKS:
            clocks.append({
                "who": CLOCK_WHO[clock], "hours": clock_hours(clock), "due": breach.due(clock),
                "state": breach.clock_state(clock, now), "outcome": NoticeOutcome(breach.outcome(clock)).label,
                "notified_at": breach.field(clock, "notified_at"), "by": breach.field(clock, "notified_by"),
                "reference": breach.field(clock, "reference"),
                "reason": breach.field(clock, "not_required_reason"),
                "left": breach.due(clock) - now,
            })
    return render_to_string("admin/disclosure/report/breach.html", {"breach": breach, "clocks": clocks})


# --- Outgoing webhooks ---------------------------------------------------------------------------
class WebhookEndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(choices=EventType.choices, widget=forms.CheckboxSelectMultiple,
                                       help_text="The events this endpoint receives.")

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "format", "events", "include_title", "active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("name", "format", "url", "subscribed", "include_title", "active")
    list_filter = ("format", "active")

    def get_fields(self, request, obj=None):
        fields = ["name", "url", "format", "events", "include_title", "active"]
        if obj is not None and obj.format == Format.GENERIC and self.has_change_permission(request, obj):
            fields.append("signing_secret")
        return fields

    def get_readonly_fields(self, request, obj=None):
        return ["signing_secret"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        transaction.on_commit(lambda: rotation.record(timezone.now()))  # its credential's age shows at once

    @admin.display(description="events")
    def subscribed(self, obj):
        return ", ".join(obj.events or []) or "–"

    @admin.display(description="signing secret")
    def signing_secret(self, obj):
        now = timezone.now()
        if len(obj.signing_secrets(now)) > 1:
            return format_html('<code>{}</code><br><span class="help">New: give it to the receiver by {}. Until then '
                               'messages are also signed with the former secret, so nothing is refused.</span>',
                               obj.secret, timezone.localtime(obj.previous_secret_until).strftime("%d %b %Y %H:%M %Z"))
        return format_html('<code>{}</code><br><span class="help">Give it to the receiver to verify the '
                           'webhook-signature header (README: Incidents).</span>', obj.secret)

    actions = ["new_signing_secret"]

    @admin.action(description="New signing secret for the selected endpoints (rotation)", permissions=["change"])
    def new_signing_secret(self, request, queryset):
        now = timezone.now()
        renewed = list(queryset.filter(format=Format.GENERIC))
        for endpoint in renewed:
            endpoint.renew_secret(now)
            self.log_change(request, endpoint, "New signing secret")
        rotation.record(now)  # the dashboard shows the new secret's age at once
        hours = int(SECRET_OVERLAP.total_seconds() // 3600)
        messages.success(request, f"{len(renewed)} endpoint(s) have a new signing secret (shown on the endpoint's "
                                  f"page): give it to the receiver within {hours} hours. Until then every message "
                                  "is signed with the old and the new secret, so the receiver refuses nothing.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "event_type", "endpoint", "report", "state", "attempts", "response_status",
                    "sent_at", "last_error")
    list_filter = ("state", "event_type", "endpoint")
    search_fields = ("report__tracking_id", "message_id")
    list_select_related = ("endpoint", "report")
    fields = ("endpoint", "report", "event_type", "message_id", "payload", "state", "attempts", "next_attempt_at",
              "response_status", "last_error", "sent_at", "created_at")
    readonly_fields = fields
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry the selected failed deliveries", permissions=["change"])
    def retry_now(self, request, queryset):
        now = timezone.now()
        retried = [d for d in queryset.filter(state=WebhookDelivery.State.FAILED) if d.retry(now)]
        send_after_commit(retried)
        messages.success(request, f"{len(retried)} failed webhook delivery(ies) queued for another attempt.")
