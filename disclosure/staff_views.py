"""Staff pages outside the model admin (mounted under /admin/ with the admin's login)."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from disclosure import backup_targets, pgp, rotation, storage
from disclosure.metrics import dashboard
from disclosure.models import Programme


def metrics(request):
    if not request.user.has_perm("disclosure.view_report"):
        raise PermissionDenied
    now = timezone.now()
    key = pgp.team_key() if pgp.team_fingerprint() else None
    try:
        newest_backup_at, backups_listed = backup_targets.newest_backup_at(), True
    except (backup_targets.BackupError, *storage.ERRORS):
        newest_backup_at, backups_listed = None, False
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "metrics": (figures := dashboard(now)),
        "breach_rows": [("Clients", figures["breach"]["client"]), ("Regulator", figures["breach"]["regulator"])],
        "now": now,
        "team_key": key,
        "securitytxt_expires_at": Programme.load().securitytxt_expires_at,
        "backups_watched": backup_targets.watched(newest_backup_at),
        "newest_backup_at": newest_backup_at,
        "backups_listed": backups_listed,
        "backups_location": backup_targets.describe(),
        "credentials": rotation.ages(now),
        "secret_key_fallbacks": rotation.fallbacks(),
    }
    return TemplateResponse(request, "admin/disclosure/metrics.html", context)
