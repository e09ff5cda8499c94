"""Public pages and the reporter's status page. Every view has one shape: access check,
form, one model call, redirect."""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_http_methods, require_safe

from disclosure import export, health, pgp, securitytxt, storage
from disclosure.forms import CreditForm, FollowUpForm, LostLinkForm, ReporterKeyForm, ReportForm
from disclosure.models import Attachment, Message, Programme, Report, StatusLink
from disclosure.pgp import sealing, transition
from disclosure.ratelimits import check as check_rate
from disclosure.ratelimits import limit, refuse_if_blocked

log = logging.getLogger(__name__)
RECEIPT_COOKIE = "vdp_receipt"
RECEIPT_SALT = "disclosure.receipt"
RECEIPT_MAX_AGE = 3600

# What storing a submission or message can fail with when a part of the portal is down:
# the upload folder (OSError) or the object store (botocore's errors), gpg or the team
# keyring (PGPError, or OSError when the binary vanished), the database. The person gets
# the form back with what they typed.
STORAGE_ERRORS = (*storage.ERRORS, pgp.PGPError, DatabaseError)
RETRY_AFTER_SECONDS = 300


def _private(response):
    """Pages behind a secret link: never cached, never indexed."""
    response["Cache-Control"] = "no-store, private"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@require_safe
def home(request):
    return render(request, "disclosure/home.html")


@require_safe
def policy(request):
    return render(request, "disclosure/policy.html", {
        "programme": Programme.load(), "superseded_keys": transition.superseded(),
        "transition_statement": transition.published() is not None})


@require_http_methods(["GET", "HEAD", "POST"])
def report_form(request):
    if request.method == "POST":
        # An address over either limit is refused before its form is even read. Reports
        # created count against "submit", forms sent back with errors against "form_post".
        refuse_if_blocked(request, "submit")
        refuse_if_blocked(request, "form_post")
    form = ReportForm(request.POST, request.FILES) if request.method == "POST" else ReportForm()
    if request.method == "POST":
        try:
            if form.is_valid():
                check_rate(request, "submit")
                report, token = Report.submit(
                    fields=form.report_fields(),
                    files=form.cleaned_data["attachments"],
                    submission_key=form.cleaned_data["submission_id"],
                )
                return _received(report, token)
            check_rate(request, "form_post")
        except STORAGE_ERRORS as error:
            # Nothing was saved (see Report.submit): the researcher gets everything they
            # typed back, and the team is alerted (log and /healthz).
            health.storage_failed("a report", error)
            return _not_stored(render(request, "disclosure/report_form.html",
                                      {"form": form, "not_stored": True, "team_key": _team_key()}, status=503))
    status = 400 if request.method == "POST" else 200
    return render(request, "disclosure/report_form.html", {"form": form, "team_key": _team_key()}, status=status)


def _team_key():
    """The team key for the form's encryption notice (its fingerprint and date, read from
    the keyring once per keyring change); None when gpg or the keyring cannot say."""
    try:
        return pgp.team_key()
    except (pgp.PGPError, OSError):
        return None


def _received(report, token):
    response = redirect("report-received")
    response.set_signed_cookie(
        RECEIPT_COOKIE, signing.dumps({"id": report.pk, "token": token}, compress=True),
        salt=RECEIPT_SALT, max_age=RECEIPT_MAX_AGE, path="/report/received/",
        secure=settings.SESSION_COOKIE_SECURE, httponly=True, samesite="Strict",
    )
    return response


def _not_stored(response):
    """The page a person gets back when what they sent could not be stored: their form,
    filled in again, with a 503 that says when to try again."""
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store, private"
    return response


@require_safe
def report_received(request):
    """The confirmation page. The status link lives only in a short-lived signed cookie in
    the submitter's browser (post/redirect/get without storing the token server-side)."""
    try:
        raw = request.get_signed_cookie(RECEIPT_COOKIE, salt=RECEIPT_SALT, max_age=RECEIPT_MAX_AGE)
        receipt = signing.loads(raw)
        report = Report.objects.get(pk=receipt["id"])
        if StatusLink.find_report(receipt["token"]) != report:
            raise Report.DoesNotExist
    except (KeyError, TypeError, signing.BadSignature, Report.DoesNotExist):
        return _private(render(request, "disclosure/report_received.html", {"expired": True}, status=404))
    context = {"report": report, "status_url": StatusLink.url(receipt["token"])}
    return _private(render(request, "disclosure/report_received.html", context))


STATUS_METHODS = ("GET", "HEAD", "POST")  # one counter for every status-link request


# What the status page never shows (it links to the "as submitted" page instead): left in
# the database, so a view of a report with long sealed text does not read it.
NOT_ON_STATUS_PAGE = (*sealing.SEALED_REPORT_FIELDS, "sealed_content", "reporter_key")


def _report_for(request, token: str, *, count_hit=True, reports=None) -> Report:
    """The report a status token opens (from ``reports``, by default every report).

    An address over ``RATELIMIT_STATUS`` is refused before the lookup, whatever the token,
    so a blocked guesser cannot tell a hit from a miss. Misses count (that is what guessing
    looks like), and so does every other request except viewing the status page itself
    (``count_hit=False``), which is cheap and what the link is for.
    """
    if count_hit:
        check_rate(request, "status", methods=STATUS_METHODS)
    else:
        refuse_if_blocked(request, "status")
    report = StatusLink.find_report(token, reports)
    if report is None:
        if not count_hit:
            check_rate(request, "status", methods=STATUS_METHODS)
        raise Http404
    return report


def _status_context(report, token, form, **forms) -> dict:
    """The status page: no gpg here. Sealed text is shown on the page it links to
    (``status_submitted``), decrypted when the reporter asks for it."""
    return {
        "report": report,
        "sla_state": report.sla_state(timezone.now()),
        "events": report.public_events(),
        "form": form,
        "token": token,
        **forms,
    }


@require_http_methods(["GET", "HEAD", "POST"])
def status(request, token):
    form = FollowUpForm(request.POST, request.FILES) if request.method == "POST" else FollowUpForm()
    try:
        report = _report_for(request, token, count_hit=request.method == "POST",
                             reports=Report.objects.defer(*NOT_ON_STATUS_PAGE))
    except DatabaseError as error:
        if request.method != "POST":
            raise
        return _message_not_stored(request, token, form, error)
    if request.method == "POST":
        check_rate(request, "message")
        if not report.is_open:
            form.add_error(None, "This report is closed. If something new came up, please submit a new report.")
        else:
            try:
                if form.is_valid():
                    report.add_reporter_message(form.cleaned_data["body"], form.cleaned_data["attachments"])
                    messages.success(request, "Your message was sent to the security team.")
                    return redirect("status", token=token)
            except STORAGE_ERRORS as error:
                return _message_not_stored(request, token, form, error, report)
    status_code = 400 if request.method == "POST" else 200
    return _private(render(request, "disclosure/status.html", _status_context(report, token, form),
                           status=status_code))


@require_safe
def status_submitted(request, token):
    """What the reporter sent (the report and their messages), decrypted on request."""
    report = _report_for(request, token)
    messages_sent = report.messages.filter(kind=Message.Kind.FROM_REPORTER).prefetch_related("attachments")
    return _private(render(request, "disclosure/status_submitted.html", {
        "report": report, "token": token, "content": report.content(),
        "attachments": report.attachments.filter(message__isnull=True), "messages_sent": messages_sent,
    }))


def _message_not_stored(request, token, form, error, report=None):
    """A follow-up message that could not be stored: nothing was saved; the status page
    again with the message as typed, or, when the page itself needs what is down (the
    database, gpg to show sealed text), the message form alone."""
    health.storage_failed("a reporter's message", error)
    response = None
    if report is not None:
        try:
            context = {**_status_context(report, token, form), "not_stored": True}
            response = render(request, "disclosure/status.html", context, status=503)
        except STORAGE_ERRORS:
            response = None
    if response is None:
        response = render(request, "disclosure/message_not_stored.html", {"form": form, "token": token}, status=503)
    return _private(_not_stored(response))


def _download(attachment: Attachment):
    """Stream the file (decrypted when the team key can decrypt here) through this view:
    never a URL of the store's for the browser."""
    try:
        handle, name = attachment.open_plain()
    except FileNotFoundError:
        raise Http404 from None
    except storage.ERRORS as error:
        log.error("Reading attachment %s failed: %s: %s", attachment.pk, type(error).__name__, error)
        response = HttpResponse("The file cannot be read right now. Please try again in a few minutes.\n",
                                content_type="text/plain; charset=utf-8", status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return _private(response)
    response = FileResponse(handle, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return _private(response)


@require_safe
def status_download(request, token, attachment_id):
    report = _report_for(request, token)
    return _download(get_object_or_404(Attachment, pk=attachment_id, report=report))


@require_safe
@staff_member_required
def staff_download(request, attachment_id):
    if not request.user.has_perm("disclosure.view_report"):
        raise PermissionDenied
    return _download(get_object_or_404(Attachment, pk=attachment_id))


@require_http_methods(["GET", "HEAD", "POST"])
@limit("lost_link")
def lost_link(request):
    """A reporter who lost their link asks for fresh ones by email. The answer is the same
    whether or not reports exist for the address, so it reveals nothing."""
    form = LostLinkForm(request.POST) if request.method == "POST" else LostLinkForm()
    if request.method == "POST" and form.is_valid():
        Report.reissue_links(form.cleaned_data["email"])
        messages.success(request, "If we have reports from that address, we have emailed a fresh link for each of "
                                  "them. Earlier links no longer work.")
        return redirect("lost-link")
    return render(request, "disclosure/lost_link.html", {"form": form}, status=400 if form.errors else 200)


@require_safe
def status_export(request, token):
    """The reporter's copy of their report and its public history, as JSON."""
    report = _report_for(request, token)
    response = JsonResponse(export.report_for_reporter(report), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{report.tracking_id}.json"'
    return _private(response)


# --- security.txt, the team key and the pages it points to ---------------------------------
@require_safe
def security_txt(request):
    """Normally answered by ``securitytxt.SecurityTxtMiddleware``; this view names the URL."""
    return securitytxt.SecurityTxtMiddleware(lambda request: None)(request)


@require_safe
def security_txt_redirect(request):
    return redirect("security-txt", permanent=True)


def _team_public_key(*, armor: bool):
    key = pgp.team_key() if pgp.team_fingerprint() else None
    if key is None:
        raise Http404
    return key, pgp.export_public(key.fingerprint, armor=armor)


@require_safe
def pgp_key(request):
    _, armored = _team_public_key(armor=True)
    # Plain text, so a browser shows the key rather than downloading it; gpg --import reads it as is.
    response = HttpResponse(armored, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="pgp-key.txt"'
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_safe
def pgp_key_transition(request):
    """The statement, signed by the former and the new team key, that the new one supersedes it."""
    statement = transition.published()
    if statement is None:
        raise Http404
    response = HttpResponse(statement.statement, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_safe
def wkd_key(request, wkd_hash):
    """Web Key Directory, direct method: the team key for an address on this domain."""
    key, binary = _team_public_key(armor=False)
    domain = urlsplit(settings.SITE_URL).hostname
    hashes = {pgp.wkd_hash(email.split("@")[0]) for email in key.emails if email.endswith("@" + domain)}
    if wkd_hash not in hashes:
        raise Http404
    response = HttpResponse(binary, content_type="application/octet-stream")
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_safe
def wkd_policy(request):
    response = HttpResponse(b"", content_type="text/plain")
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_safe
def hall_of_fame(request):
    return render(request, "disclosure/hall_of_fame.html", {"credits": Report.objects.hall_of_fame()})


@require_http_methods(["POST"])
def status_withdraw(request, token):
    report = _report_for(request, token)
    if request.POST.get("confirm") != "withdraw":
        messages.error(request, "Tick the box to confirm that you want to withdraw the report.")
    elif not report.is_open:
        messages.error(request, "This report is already closed.")
    else:
        report.withdraw()
        messages.success(request, "Your report was withdrawn. Thank you for letting us know.")
    return redirect("status", token=token)


def _status_with_errors(request, report, token, **forms):
    """A small status-page form sent back: the page again, with the form's errors beside it
    and what was typed kept (not cached: it is this visitor's)."""
    context = _status_context(report, token, FollowUpForm(), **forms)
    return _private(render(request, "disclosure/status.html", context, status=400))


@require_http_methods(["POST"])
def status_key(request, token):
    report = _report_for(request, token)
    form = ReporterKeyForm(request.POST)
    if not form.is_valid():
        return _status_with_errors(request, report, token, key_form=form)
    key = None if form.cleaned_data["remove"] else form.cleaned_data["reporter_public_key"]
    report.set_reporter_key(key)
    messages.success(request, f"Emails to you are now encrypted to {key.fingerprint}." if key else
                     "Your key was removed; emails to you are no longer encrypted.")
    return redirect("status", token=token)


@require_http_methods(["POST"])
def status_credit(request, token):
    report = _report_for(request, token)
    form = CreditForm(request.POST)
    if not form.is_valid():
        return _status_with_errors(request, report, token, credit_form=form)
    report.set_credit(form.cleaned_data["credit"], form.cleaned_data["credit_name"])
    messages.success(request, "Your credit preference was saved.")
    return redirect("status", token=token)


@require_safe
def favicon(request):
    return redirect(static("favicon.svg"), permanent=True)


def csrf_failure(request, reason=""):
    return render(request, "disclosure/csrf_failure.html", status=403)
