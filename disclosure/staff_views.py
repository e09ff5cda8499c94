"""Staff pages outside the model admin (mounted under /admin/ with the admin's login)."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from disclosure.metrics import sla_metrics


def metrics(request):
    if not request.user.has_perm("disclosure.view_report"):
        raise PermissionDenied
    context = {
        **admin.site.each_context(request),
        "title": "Response times",
        "metrics": sla_metrics(timezone.now()),
    }
    return TemplateResponse(request, "admin/disclosure/metrics.html", context)
