from django.contrib import admin
from django.urls import include, path

from disclosure import health, staff_views, two_factor, views
from disclosure.ratelimits import limit

admin.site.site_header = "Vulnerability disclosure"
admin.site.site_title = "Disclosure admin"
admin.site.index_title = "Triage"
admin.site.enable_nav_sidebar = False  # it repeats the index; the queue's columns need the width

urlpatterns = [
    path("favicon.ico", views.favicon),
    path("healthz", health.healthz, name="healthz"),
    path("admin/login/", limit("login")(admin.site.login)),
    path("admin/2fa/", limit("login")(two_factor.two_factor), name="staff-2fa"),
    path("admin/metrics/", admin.site.admin_view(staff_views.metrics), name="staff-metrics"),
    path("admin/", admin.site.urls),
    # Mail providers' inbound webhooks (/anymail/<esp>/inbound/): disclosure/inbound/webhooks.py
    path("anymail/", include("anymail.urls")),
    path("", include("disclosure.urls")),
]
