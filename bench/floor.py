"""The benchmark's floor: the least a page of this portal can cost.

A minimal view behind the same middleware stack as every page (sessions, CSRF, auth,
two-factor, messages, CSP, security headers), doing one indexed query and rendering a
small template. ``bench/load.py`` serves it next to the real pages (``bench.settings``
adds it to the URLs); it never ships in the portal's own URLs.
"""

from django.http import HttpResponse
from django.template import Context, Template
from django.urls import path

from config.urls import urlpatterns as portal_urls
from disclosure.models import Report

PAGE = Template("<!doctype html><html lang=\"en\"><head><title>{{ title }}</title></head>"
                "<body><main><h1>{{ title }}</h1><p>Tracking ID: {{ tracking_id }}</p></main></body></html>")


def floor(request):
    tracking_id = Report.objects.filter(pk=1).values_list("tracking_id", flat=True).first()
    return HttpResponse(PAGE.render(Context({"title": "Floor", "tracking_id": tracking_id})))


urlpatterns = [path("bench-floor/", floor), *portal_urls]
