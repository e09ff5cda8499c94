"""Admin pages for rotation: credential ages (the dashboard shows the current ones) and the
team key transitions, both read-only: rows are written by the worker and by
``pgp_rotate_team_key``."""

from django.contrib import admin

from disclosure.pgp.transition import KeyTransition
from disclosure.rotation import CredentialSighting


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CredentialSighting)
class CredentialSightingAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "first_seen", "last_seen", "retired_at")
    list_filter = ("kind", ("retired_at", admin.EmptyFieldListFilter))
    fields = ("name", "kind", "first_seen", "last_seen", "retired_at")


@admin.register(KeyTransition)
class KeyTransitionAdmin(ReadOnlyAdmin):
    list_display = ("announced_on", "old_fingerprint", "new_fingerprint", "signed")
    fields = ("old_fingerprint", "new_fingerprint", "announced_on", "statement", "created_at")

    @admin.display(boolean=True, description="signed by both keys")
    def signed(self, obj):
        return bool(obj.statement)
