"""The Inbound mail log in the admin (read-only), and the queue's channel column."""

from functools import partial

from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html

from disclosure.inbound.models import InboundMail
from disclosure.inbound.webhooks import enqueue_filing


@admin.display(description="channel", ordering="channel")
def channel_label(report) -> str:
    """Email or form; an emailed report held on arrival, or whose reporter's address bounced, says so."""
    label = report.get_channel_display()
    if report.intake_hold:
        label += " (held)" if report.intake_hold == "rate_limited" else " (likely spam)"
    if report.reporter_email_bounced_at:
        label += ", address bounced"
    return label


@admin.register(InboundMail)
class InboundMailAdmin(admin.ModelAdmin):
    list_display = ("arrived_at", "source", "sender", "subject", "outcome", "state", "report_link", "signature")
    list_filter = ("state", "outcome", "source", "signature")
    search_fields = ("sender", "subject", "header_message_id", "report__tracking_id")
    list_select_related = ("report",)
    date_hierarchy = "arrived_at"
    exclude = ("raw",)
    actions = ["file_again"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name != "raw"]

    @admin.display(description="report", ordering="report__tracking_id")
    def report_link(self, obj):
        if obj.report_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:disclosure_report_change", args=[obj.report_id]),
                           obj.report.tracking_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_refile_permission(self, request):
        """Whoever triages reports may have a failed message filed again."""
        return request.user.has_perm("disclosure.change_report")

    @admin.action(description="File the selected failed messages again", permissions=["refile"])
    def file_again(self, request, queryset):
        refiled = [row for row in queryset.filter(state=InboundMail.State.FAILED) if row.file_again()]
        for row in refiled:
            self.log_change(request, row, "Filed again after failing.")
            transaction.on_commit(partial(enqueue_filing, row.pk))
        skipped = queryset.count() - len(refiled)
        messages.success(request, f"{len(refiled)} failed message(s) queued to be filed again."
                         + (f" {skipped} not failed, left as they are." if skipped else ""))
