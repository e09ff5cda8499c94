from django.urls import path, re_path

from disclosure import views

TOKEN = r"(?P<token>[A-Za-z0-9_-]{20,100})"

urlpatterns = [
    path("", views.home, name="home"),
    path("policy/", views.policy, name="policy"),
    path("report/", views.report_form, name="report"),
    path("report/received/", views.report_received, name="report-received"),
    re_path(rf"^status/{TOKEN}/$", views.status, name="status"),
    re_path(rf"^status/{TOKEN}/files/(?P<attachment_id>[0-9]+)/$", views.status_download, name="status-download"),
    path("staff/attachments/<int:attachment_id>/", views.staff_download, name="staff-download"),
]
