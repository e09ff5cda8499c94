"""The staff side. Reports only arrive through the public form, so there is no "add"; the
reporter's content is read-only and rendered through the Markdown sanitiser."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from disclosure import markdown
from disclosure.models import Attachment, Event, Message, OutboundEmail, Report

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


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("tracking_id", "title", "status", "severity", "assignee", "received_at", "ack_due_at",
                    "assess_due_at")
    list_filter = ("status", "severity", "ack_milestone", "assess_milestone")
    search_fields = ("tracking_id", "title", "reporter_email", "asset")
    list_select_related = ("assignee",)
    date_hierarchy = "received_at"
    list_per_page = 50
    inlines = [AttachmentInline, MessageInline, EventInline, EmailInline]
    readonly_fields = (
        *REPORTER_FIELDS, "status", "received_at", "acknowledged_at", "assessed_at", "resolved_at",
        "disclosed_at", "closed_at", "ack_due_at", "assess_due_at", "ack_milestone", "assess_milestone",
    )
    fieldsets = (
        ("Report", {"fields": REPORTER_FIELDS}),
        ("Triage", {"fields": ("status", "severity", "assignee", "duplicate_of")}),
        ("Deadlines", {"fields": ("ack_due_at", "ack_milestone", "assess_due_at", "assess_milestone")}),
        ("Lifecycle", {"fields": ("received_at", "acknowledged_at", "assessed_at", "resolved_at",
                                  "disclosed_at", "closed_at")}),
    )
    raw_id_fields = ("duplicate_of",)

    def has_add_permission(self, request):
        return False

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
