from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Vulnerability disclosure"
admin.site.site_title = "Disclosure admin"
admin.site.index_title = "Triage"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("disclosure.urls")),
]
