"""The staff side. Reports only arrive through the public form, so there is no "add"; the
reporter's content is read-only and rendered through the Markdown sanitiser."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from disclosure import markdown
from disclosure.models import (
    CLOSING_OUTCOMES,
    Attachment,
    Event,
    Message,
    OutboundEmail,
    Report,
    SlaState,
    Status,
    TransitionError,
)
from disclosure.staff_forms import DECISIONS, CloseForm, MessageForm, NoteForm

REPORTER_FIELDS = (
    "tracking_id", "title", "rendered_description", "asset", "vulnerability_type",
    "rendered_steps", "rendered_impact", "reporter_name", "reporter_email", "credit", "credit_name",
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AttachmentInline(ReadOnlyInline):
    model = Attachment
    fields = ("download", "size", "sha256", "declared_type", "message", "created_at")
    readonly_fields = fields

    @admin.display(description="file")
    def download(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("staff-download", args=[obj.pk]), obj.original_name)


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ("created_at", "kind", "author", "rendered_body")
    readonly_fields = fields

    @admin.display(description="message")
    def rendered_body(self, obj):
        return markdown.render(obj.body)


class EventInline(ReadOnlyInline):
    model = Event
    fields = ("created_at", "kind", "actor", "from_status", "to_status", "public")
    readonly_fields = fields
    verbose_name_plural = "timeline"


class EmailInline(ReadOnlyInline):
    model = OutboundEmail
    fk_name = "report"
    fields = ("created_at", "kind", "to", "subject", "state", "attempts", "sent_at", "last_error")
    readonly_fields = fields
    verbose_name_plural = "emails sent"


class SlaStateFilter(admin.SimpleListFilter):
    title = "deadline state"
    parameter_name = "sla"

    def lookups(self, request, model_admin):
        return SlaState.choices

    def queryset(self, request, queryset):
        if self.value() in SlaState.values:
            return queryset.in_sla_state(self.value(), timezone.now())
        return queryset


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("tracking_id", "title", "status", "severity", "sla_badge", "assignee", "received_at")
    list_filter = (SlaStateFilter, "status", "severity", "ack_milestone", "assess_milestone")
    search_fields = ("tracking_id", "title", "reporter_email", "asset")
    list_select_related = ("assignee",)
    date_hierarchy = "received_at"
    list_per_page = 50
    inlines = [AttachmentInline, MessageInline, EventInline, EmailInline]
    readonly_fields = (
        *REPORTER_FIELDS, "status", "severity", "duplicate_of", "received_at", "acknowledged_at", "assessed_at",
        "resolved_at", "disclosed_at", "closed_at", "ack_due_at", "assess_due_at", "ack_milestone", "assess_milestone",
    )
    fieldsets = (
        ("Report", {"fields": REPORTER_FIELDS}),
        ("Triage", {"fields": ("status", "severity", "assignee", "duplicate_of")}),
        ("Deadlines", {"fields": ("ack_due_at", "ack_milestone", "assess_due_at", "assess_milestone")}),
        ("Lifecycle", {"fields": ("received_at", "acknowledged_at", "assessed_at", "resolved_at",
                                  "disclosed_at", "closed_at")}),
    )
    change_form_template = "admin/disclosure/report/change_form.html"

    def has_add_permission(self, request):
        return False

    @admin.display(description="deadline")
    def sla_badge(self, obj):
        state = SlaState(obj.sla_state(timezone.now()))
        due = obj.ack_due_at if obj.ack_milestone == "pending" else obj.assess_due_at
        label = state.label
        if state in (SlaState.OVERDUE, SlaState.DUE_TODAY, SlaState.DUE_SOON, SlaState.ON_TRACK):
            label = f"{label} · {timezone.localtime(due):%d %b %H:%M %Z}"
        return format_html('<span class="sla sla-{}">{}</span>', state.value, label)

    # --- Decisions ------------------------------------------------------------------------
    def get_urls(self):
        return [
            path("<path:object_id>/act/<str:action>/", self.admin_site.admin_view(self.act_view),
                 name="disclosure_report_act"),
            *super().get_urls(),
        ]

    def decision_forms(self, report):
        available = report.available_actions()
        forms = [DECISIONS[name]() for name in available if name != "close"]
        closing = [(Status(o).label, CloseForm.for_outcome(report, o))
                   for o in [Status.DUPLICATE, Status.INFORMATIVE, Status.NOT_APPLICABLE, Status.OUT_OF_SCOPE,
                             Status.SPAM] if "close" in available and o in CLOSING_OUTCOMES]
        return {"decision_forms": forms, "closing_forms": closing,
                "message_form": MessageForm(), "note_form": NoteForm()}

    def change_view(self, request, object_id, form_url="", extra_context=None):
        report = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if report is not None and self.has_change_permission(request, report):
            extra_context.update(self.decision_forms(report))
        return super().change_view(request, object_id, form_url, extra_context)

    def act_view(self, request, object_id, action):
        return require_POST(self._act)(request, object_id, action)

    def _act(self, request, object_id, action):
        report = get_object_or_404(Report, pk=object_id)
        if not self.has_change_permission(request, report) or action not in DECISIONS:
            raise PermissionDenied
        form = DECISIONS[action](request.POST)
        back = redirect(reverse("admin:disclosure_report_change", args=[report.pk]))
        if not form.is_valid():
            for field, errors in form.errors.items():
                label = form[field].label if field in form.fields else ""
                self.message_user(request, f"{form.label}: {label + ': ' if label else ''}{' '.join(errors)}",
                                  messages.ERROR)
            return back
        try:
            form.apply(report, request.user)
        except TransitionError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return back
        self.message_user(request, f"{report.tracking_id}: {form.label.lower()} done.", messages.SUCCESS)
        return back

    def save_model(self, request, obj, form, change):
        """Assignment goes through the model so it is recorded as an event."""
        if change and "assignee" in form.changed_data:
            assignee = obj.assignee
            obj.assignee_id = form.initial.get("assignee")
            obj.assign(request.user, assignee)
            return
        super().save_model(request, obj, form, change)

    # --- Bulk actions ---------------------------------------------------------------------
    actions = ["assign_to_me", "close_as_spam"]

    @admin.action(description="Assign the selected reports to me", permissions=["change"])
    def assign_to_me(self, request, queryset):
        for report in queryset:
            report.assign(request.user, request.user)
        self.message_user(request, f"{queryset.count()} report(s) assigned to you.", messages.SUCCESS)

    @admin.action(description="Close the selected reports as spam", permissions=["change"])
    def close_as_spam(self, request, queryset):
        closed, skipped = 0, []
        for report in queryset:
            try:
                report.close(request.user, Status.SPAM)
                closed += 1
            except TransitionError:
                skipped.append(report.tracking_id)
        self.message_user(request, f"{closed} report(s) closed as spam.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Not open, left alone: {', '.join(skipped)}.", messages.WARNING)

    @admin.display(description="description")
    def rendered_description(self, obj):
        return markdown.render(obj.description)

    @admin.display(description="steps to reproduce")
    def rendered_steps(self, obj):
        return markdown.render(obj.steps_to_reproduce)

    @admin.display(description="impact")
    def rendered_impact(self, obj):
        return markdown.render(obj.impact)


@admin.register(OutboundEmail)
class OutboundEmailAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "to", "subject", "state", "attempts", "sent_at", "last_error")
    list_filter = ("state", "kind")
    search_fields = ("to", "subject", "report__tracking_id")
    list_select_related = ("report",)
    readonly_fields = ("kind", "report", "event", "to", "subject", "body_text", "message_id", "references",
                       "state", "attempts", "next_attempt_at", "last_error", "provider_id", "created_at", "sent_at")
    exclude = ("body_html",)
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry sending the selected emails", permissions=["change"])
    def retry_now(self, request, queryset):
        from disclosure.emails import enqueue_delivery

        now = timezone.now()
        count = 0
        for email in queryset.exclude(state=OutboundEmail.State.SENT):
            email.retry(now)
            enqueue_delivery(email.pk)
            count += 1
        messages.success(request, f"{count} email(s) queued for another attempt.")
