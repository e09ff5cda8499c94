"""Staff two-factor enforcement: with ``STAFF_2FA_REQUIRED`` on, a staff session that has
not passed a TOTP check is sent to enrol (first time) or verify before any admin page."""

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse

PROTECTED = ("/admin/", "/staff/")  # the admin, and staff downloads of attachments
EXEMPT = ("/admin/login/", "/admin/logout/", "/admin/2fa/", "/admin/jsi18n/")


class StaffTwoFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (settings.STAFF_2FA_REQUIRED and request.path.startswith(PROTECTED)
                and not request.path.startswith(EXEMPT)):
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated and not user.is_verified():
                return redirect(f"{reverse('staff-2fa')}?next={request.get_full_path()}")
        return self.get_response(request)
