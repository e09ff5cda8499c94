"""Self-service TOTP enrolment and verification for staff (django-otp).

A new staff member logs in with their password, scans the QR code with an authenticator
app and confirms one code; after that every login asks for a code. Devices throttle
repeated wrong codes (django-otp)."""

import base64
from io import BytesIO

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice


class TokenForm(forms.Form):
    token = forms.CharField(label="6-digit code from your authenticator app", min_length=6, max_length=8,
                            widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                          "autofocus": True}))


def _qr_data_uri(uri: str) -> str:
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        return "/admin/"
    return target


@login_required(login_url="/admin/login/")
def two_factor(request):
    user = request.user
    if not user.is_staff:
        return redirect_to_login(request.get_full_path(), "/admin/login/")
    confirmed = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    enrolling = confirmed is None
    device = confirmed or TOTPDevice.objects.filter(user=user, confirmed=False).first() \
        or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = TokenForm(request.POST) if request.method == "POST" else TokenForm()
    if request.method == "POST" and form.is_valid():
        verified, _ = device.verify_is_allowed()
        if verified and device.verify_token(form.cleaned_data["token"].strip()):
            if enrolling:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
            otp_login(request, device)
            return redirect(_next(request))
        form.add_error("token", "That code is not valid. Check your device's clock and try the current code; "
                                "repeated wrong codes are slowed down.")
    context = {
        "form": form, "enrolling": enrolling, "next": _next(request), "title": "Two-factor authentication",
        "site_header": "Vulnerability disclosure",
    }
    if enrolling:
        context["qr"] = _qr_data_uri(device.config_url)
        context["secret"] = base64.b32encode(device.bin_key).decode()
    status = 400 if form.is_bound and form.errors else 200
    return TemplateResponse(request, "admin/disclosure/two_factor.html", context, status=status)
