"""The triage queue: the security team's workspace.

Reports only arrive through the public form, so there is no "add". The list is ordered by
the nearest open deadline and runs a constant number of queries. The report page shows
the reporter's content through the Markdown sanitiser, one timeline (events, messages both
ways, internal notes and the emails sent with their delivery state), likely duplicates,
and a decision panel whose every form calls one model transition.
"""

import copy
import json

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F, Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from disclosure import rotation_admin  # noqa: F401  (registers the credential-age and key-transition admin)
from disclosure.duplicates import likely_duplicates
from disclosure.inbound.admin import channel_label  # also registers the Inbound mail admin
from disclosure.incident_admin import BREACH_QUEUE, BreachFilter, breach_badge, breach_clocks  # + webhooks admin
from disclosure.incident_forms import BREACH_DECISIONS, breach_forms
from disclosure.models import (
    Attachment,
    OutboundEmail,
    Programme,
    Report,
    SlaState,
    Status,
    TransitionError,
)
from disclosure.pgp import sealing
from disclosure.staff_forms import DECISIONS, CloseForm, closing_reply

REPORTER_FIELDS = (
    "tracking_id", "title", "rendered_description", "vulnerability_type",
    "rendered_steps", "rendered_impact", "reporter_name", "reporter_email", "reporter_key_info", "credit",
    "credit_name",
)
EDITABLE_DETAILS = Report.DETAIL_FIELDS
CLOSING_ORDER = [Status.DUPLICATE, Status.INFORMATIVE, Status.NOT_APPLICABLE, Status.OUT_OF_SCOPE, Status.SPAM]

# Saved filters shown above the list: the team's named queues.
QUEUES = [
    ("Awaiting acknowledgement", "status__exact=new"),
    ("Overdue", "sla=overdue"),
    ("Due today", "sla=due_today"),
    ("Needs more info", "status__exact=needs_info"),
    ("Mine", "assignee=mine"),
    ("Unassigned open", "assignee=none&open=1"),
    BREACH_QUEUE,
]


class AttachmentInline(admin.TabularInline):
    model = Attachment
    extra = 0
    can_delete = False
    fields = ("download", "file_size", "file_type", "sha256", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="file")
    def download(self, obj):
        note = mark_safe(' <span class="quiet">(stored encrypted)</span>') if obj.encrypted else ""  # nosec B308
        return format_html('<a href="{}">{}</a>{}', reverse("staff-download", args=[obj.pk]), obj.display_name, note)

    @admin.display(description="size")
    def file_size(self, obj):
        return filesizeformat(obj.size)

    @admin.display(description="type")
    def file_type(self, obj):
        return obj.display_type


class SlaStateFilter(admin.SimpleListFilter):
    title = "deadline state"
    parameter_name = "sla"

    def lookups(self, request, model_admin):
        return SlaState.choices

    def queryset(self, request, queryset):
        if self.value() in SlaState.values:
            return queryset.in_sla_state(self.value(), timezone.now())
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        from django.contrib.auth import get_user_model

        staff = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
        return [("mine", "Mine"), ("none", "Unassigned"), *[(str(u.pk), u.get_username()) for u in staff]]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "mine":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset


class OpenFilter(admin.SimpleListFilter):
    title = "open or finished"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("1", "Open"), ("0", "Finished")]

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.open()
        if self.value() == "0":
            return queryset.exclude(pk__in=Report.objects.open().values("pk"))
        return queryset


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("tracking_id", "title", "status", "priority_badge", "sla_badge", breach_badge, "assignee", "age",
                    channel_label)
    list_display_links = ("tracking_id", "title")
    list_filter = (SlaStateFilter, OpenFilter, "status", "severity", "priority", AssigneeFilter, "channel",
                   BreachFilter)
    search_fields = ("=tracking_id", "title", "reporter_email", "asset")
    list_select_related = ("assignee", "breach")
    list_per_page = 50
    show_full_result_count = False
    inlines = [AttachmentInline]
    change_form_template = "admin/disclosure/report/change_form.html"
    change_list_template = "admin/disclosure/report/change_list.html"
    readonly_fields = (
        *REPORTER_FIELDS, "status", "severity", "cvss_vector", "cvss_score", "priority", "duplicate_of",
        "received_at", "acknowledged_at", "assessed_at", "resolved_at", "disclosed_at", "closed_at",
        "ack_due_at", "assess_due_at", "ack_milestone", "assess_milestone", "timeline", "duplicates", "purged_at",
        "breach_section",
    )
    fieldsets = (
        ("Report", {"fields": REPORTER_FIELDS}),
        ("Assessment", {"fields": ("status", ("severity", "priority"), ("cvss_vector", "cvss_score"), "asset", "cwe",
                                   "cve_id", "duplicate_of", "assignee", "planned_disclosure_date")}),
        ("Deadlines", {"fields": (("ack_due_at", "ack_milestone"), ("assess_due_at", "assess_milestone"))}),
        ("Breach clocks", {"fields": ("breach_section",)}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Likely duplicates", {"fields": ("duplicates",), "classes": ("collapse",)}),
        ("Lifecycle", {"fields": ("received_at", "acknowledged_at", "assessed_at", "resolved_at",
                                  "disclosed_at", "closed_at", "legal_hold", "purged_at"), "classes": ("collapse",)}),
    )
    actions = ["assign_to_me", "close_as_spam", "export_json", "export_csv"]

    def get_queryset(self, request):
        return super().get_queryset(request)

    def get_ordering(self, request):
        return [F("due_at").asc(nulls_last=True), "-received_at"]

    def has_add_permission(self, request):
        return False

    def has_export_permission(self, request):
        return request.user.has_perm("disclosure.export_report")

    # --- Columns --------------------------------------------------------------------------
    @admin.display(description="deadline")
    def sla_badge(self, obj):
        state = obj.sla_state(timezone.now())
        if state not in (SlaState.OVERDUE, SlaState.DUE_TODAY, SlaState.DUE_SOON, SlaState.ON_TRACK):
            return format_html('<span class="sla sla-{}">{}</span>', state.value, state.label)
        # Deadlines fall at the end of a business day: the day is what a triager scans for; the
        # exact time is in the tooltip.
        due = timezone.localtime(obj.due_at)
        return format_html('<span class="sla sla-{}" title="Due {}">{} · <span class="sla-day">{}</span></span>',
                           state.value, f"{due:%A %d %B %Y, %H:%M %Z}", state.label, f"{due:%a %d %b}")

    @admin.display(description="priority", ordering="priority")
    def priority_badge(self, obj):
        if not obj.priority:
            return obj.get_severity_display() or "–"
        return format_html('<span class="prio prio-{}">{}</span> {}', obj.priority, obj.priority,
                           obj.get_severity_display())

    @admin.display(description="age", ordering="received_at")
    def age(self, obj):
        return timesince(obj.received_at, depth=1)

    # --- The report page ------------------------------------------------------------------
    @staticmethod
    def _content(obj) -> dict:
        """The report's text, decrypted once for the three fields of this page view."""
        if not hasattr(obj, "_revealed_content"):
            obj._revealed_content = obj.content()
        return obj._revealed_content

    def _markdown(self, obj, name):
        """The reporter's Markdown, in a container styled like the status page (admin-triage.css)."""
        revealed = self._content(obj)[name]
        return format_html('<div class="md">{}</div>', sealing.as_html(revealed)) if revealed.text else ""

    @admin.display(description="description")
    def rendered_description(self, obj):
        return self._markdown(obj, "description")

    @admin.display(description="steps to reproduce")
    def rendered_steps(self, obj):
        return self._markdown(obj, "steps_to_reproduce")

    @admin.display(description="impact")
    def rendered_impact(self, obj):
        return self._markdown(obj, "impact")

    @admin.display(description="reporter's PGP key")
    def reporter_key_info(self, obj):
        return obj.reporter_key_fingerprint or "none (email to the reporter is not encrypted)"

    @admin.display(description="timeline")
    def timeline(self, obj):
        events = (obj.events.select_related("actor", "message", "message__author")
                  .prefetch_related("message__attachments",
                                    Prefetch("emails", queryset=OutboundEmail.objects.order_by("pk")))
                  .order_by("created_at", "pk"))
        return render_to_string("admin/disclosure/report/timeline.html", {"events": events})

    @admin.display(description="breach assessment")
    def breach_section(self, obj):
        return breach_clocks(obj)

    @admin.display(description="likely duplicates")
    def duplicates(self, obj):
        return render_to_string("admin/disclosure/report/duplicates.html", {"reports": likely_duplicates(obj)})

    # --- Decisions ------------------------------------------------------------------------
    def get_urls(self):
        return [
            path("<int:object_id>/act/<str:action>/", self.admin_site.admin_view(self.act_view),
                 name="disclosure_report_act"),
            *super().get_urls(),
        ]

    def decision_forms(self, report, refused=None):
        """The panel's forms; ``refused``, a form whose decision was just refused, is shown
        again in place of its blank one, with what was typed."""
        available = report.available_actions()

        def form_for(name):
            return refused if refused is not None and refused.action == name else DECISIONS[name].for_report(report)

        closing = []
        if "close" in available:
            for outcome in CLOSING_ORDER:
                data = refused.data if isinstance(refused, CloseForm) and refused.data.get("outcome") == outcome \
                    else None
                closing.append((Status(outcome).label, CloseForm.for_outcome(report, outcome, data)))
        return {"decision_forms": [form_for(name) for name in available if name != "close"],
                "closing_forms": closing, "message_form": form_for("send_message"), "note_form": form_for("add_note"),
                **breach_forms(report, refused)}

    def change_view(self, request, object_id, form_url="", extra_context=None):
        report = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if report is not None and self.has_change_permission(request, report):
            extra_context.update(self.decision_forms(report, extra_context.pop("refused_form", None)))
        return super().change_view(request, object_id, form_url, extra_context)

    def act_view(self, request, object_id, action):
        return require_POST(self._act)(request, object_id, action)

    def _act(self, request, object_id, action):
        """One decision from the panel. Done: a LogEntry (the admin's "Recent actions") and a
        redirect to the report. Refused: the report page again with the message and what was
        typed, answered 400 (the form is invalid) or 409 (the report's state does not allow it)."""
        report = get_object_or_404(Report, pk=object_id)
        decisions = {**DECISIONS, **BREACH_DECISIONS}
        if not self.has_change_permission(request, report) or action not in decisions:
            raise PermissionDenied
        form = decisions[action](request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                label = form[field].label if field in form.fields else ""
                self.message_user(request, f"{form.label}: {label + ': ' if label else ''}{' '.join(errors)}",
                                  messages.ERROR)
            return self._refused(request, report, form, status=400)
        try:
            form.apply(report, request.user)
        except TransitionError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return self._refused(request, report, form, status=409)
        self.log_change(request, report, f"Decision: {form.done}.")
        self.message_user(request, f"{report.tracking_id} {form.done}.", messages.SUCCESS)
        return redirect(reverse("admin:disclosure_report_change", args=[report.pk]))

    def _refused(self, request, report, form, *, status):
        # The report page as a GET would show it; its own form still posts to the page's URL.
        page = copy.copy(request)
        page.method = "GET"
        response = self.change_view(page, str(report.pk),
                                    form_url=reverse("admin:disclosure_report_change", args=[report.pk]),
                                    extra_context={"refused_form": form})
        response.status_code = status
        return response

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return [*self.readonly_fields, *EDITABLE_DETAILS]
        if not request.user.has_perm("disclosure.set_legal_hold"):
            return [*self.readonly_fields, "legal_hold"]  # a Lead's decision: shown, not editable
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        """Detail edits go through ``Report.update_details``, which validates them, checks
        who may change what, saves and records them."""
        if not change:
            return super().save_model(request, obj, form, change)
        obj.update_details(request.user, {name: form.cleaned_data[name] for name in form.changed_data
                                          if name in EDITABLE_DETAILS})

    # --- Bulk actions ---------------------------------------------------------------------
    # Bulk actions call the same transitions as the decision panel, with the same replies,
    # and log each report in "Recent actions" as a decision from the panel does.
    def _log_decision(self, request, reports, done):
        if reports:
            LogEntry.objects.log_actions(user_id=request.user.pk, queryset=reports, action_flag=CHANGE,
                                         change_message=f"Decision: {done}.")

    def get_deleted_objects(self, objs, request):
        """A report on legal hold cannot be deleted (by the delete page or the bulk action):
        Django refuses a deletion that lists protected objects, and says why."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        held = [f"{report.tracking_id} is on legal hold: lift the hold on its page first" for report in objs
                if isinstance(report, Report) and report.legal_hold]
        return deleted, counts, perms_needed, [*protected, *held]

    @admin.action(description="Assign the selected reports to me", permissions=["change"])
    def assign_to_me(self, request, queryset):
        assigned = [report for report in queryset if report.assign(request.user, request.user) is not None]
        self._log_decision(request, assigned, "assigned")
        self.message_user(request, f"{len(queryset)} report(s) assigned to you.", messages.SUCCESS)

    @admin.action(description="Close the selected reports as spam", permissions=["change"])
    def close_as_spam(self, request, queryset):
        closed, skipped = [], []
        for report in queryset:
            try:
                report.close(request.user, Status.SPAM, body=closing_reply(report, Status.SPAM))
                closed.append(report)
            except TransitionError:
                skipped.append(report.tracking_id)
        self._log_decision(request, closed, "closed as spam")
        self.message_user(request, f"{len(closed)} report(s) closed as spam.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Not open, left alone: {', '.join(skipped)}.", messages.WARNING)

    @admin.action(description="Export the selected reports (JSON, with timelines)", permissions=["export"])
    def export_json(self, request, queryset):
        from disclosure.export import record_export, reports_as_json

        content = json.dumps(reports_as_json(queryset), cls=DjangoJSONEncoder, indent=2)
        record_export(queryset, request.user, "json")
        return self._download(content, "application/json", "json")

    @admin.action(description="Export the selected reports (CSV)", permissions=["export"])
    def export_csv(self, request, queryset):
        from disclosure.export import record_export, reports_as_csv

        content = reports_as_csv(queryset)
        record_export(queryset, request.user, "csv")
        return self._download(content, "text/csv; charset=utf-8", "csv")

    @staticmethod
    def _download(content, content_type, extension):
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = (f'attachment; filename="reports-{timezone.now():%Y%m%d-%H%M}.'
                                           f'{extension}"')
        return response

    def changelist_view(self, request, extra_context=None):
        extra_context = {"queues": QUEUES, **(extra_context or {})}
        return super().changelist_view(request, extra_context)


@admin.register(OutboundEmail)
class OutboundEmailAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "to", "subject_line", "state", "attempts", "sent_at", "last_error")
    list_filter = ("state", "kind")
    search_fields = ("to", "subject", "report__tracking_id")
    list_select_related = ("report",)
    fields = ("kind", "report", "to", "subject_line", "body", "state", "attempts", "next_attempt", "last_error",
              "sent_at", "provider_id", "message_id", "references", "created_at")
    readonly_fields = fields
    actions = ["retry_now"]

    @admin.display(description="subject", ordering="subject")
    def subject_line(self, obj):
        return obj.subject if obj.rendered_at else "(written from its event when it is sent)"

    @admin.display(description="text")
    def body(self, obj):
        if not obj.rendered_at:
            return "(written from its event when it is sent)"
        text = obj.body_text.replace(OutboundEmail.STATUS_LINK_MARK, "«a private status link, minted when sent»")
        return format_html('<pre class="mail-body">{}</pre>', text)

    @admin.display(description="next attempt")
    def next_attempt(self, obj):
        return obj.next_attempt_at if obj.state == OutboundEmail.State.PENDING else "–"

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry sending the selected failed emails", permissions=["change"])
    def retry_now(self, request, queryset):
        from disclosure.emails import send_after_commit

        now = timezone.now()
        # Pending ones are being tried already; those of purged reports were cancelled for good.
        retried = list(queryset.filter(state=OutboundEmail.State.FAILED).exclude(report__purged_at__isnull=False))
        for email in retried:
            email.retry(now)
        send_after_commit(retried)
        messages.success(request, f"{len(retried)} failed email(s) queued for another attempt.")


@admin.register(Programme)
class ProgrammeAdmin(admin.ModelAdmin):
    """One row of programme settings; saving regenerates and re-signs security.txt."""

    fields = ("contact_emails", "preferred_languages", "hiring_url", "csaf_url", "policy_text", "securitytxt_preview",
              "securitytxt_expires_at")
    readonly_fields = ("securitytxt_preview", "securitytxt_expires_at")

    def has_add_permission(self, request):
        return not Programme.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        return redirect(reverse("admin:disclosure_programme_change", args=[Programme.load().pk]))

    @admin.display(description="security.txt as served")
    def securitytxt_preview(self, obj):
        return format_html('<pre class="mail-body">{}</pre>', obj.securitytxt or "(generated on first request)")

    def save_model(self, request, obj, form, change):
        from disclosure import securitytxt

        super().save_model(request, obj, form, change)
        signed = securitytxt.generate(timezone.now(), obj).securitytxt.startswith("-----BEGIN PGP SIGNED")
        self.message_user(request, f"security.txt was regenerated{' and signed' if signed else ''}.",
                          messages.SUCCESS)
