from django.urls import path, re_path

from disclosure import views

TOKEN = r"(?P<token>[A-Za-z0-9_-]{20,100})"

urlpatterns = [
    path("", views.home, name="home"),
    path("policy/", views.policy, name="policy"),
    path("report/", views.report_form, name="report"),
    path("report/received/", views.report_received, name="report-received"),
    re_path(rf"^status/{TOKEN}/$", views.status, name="status"),
    re_path(rf"^status/{TOKEN}/submitted/$", views.status_submitted, name="status-submitted"),
    re_path(rf"^status/{TOKEN}/files/(?P<attachment_id>[0-9]+)/$", views.status_download, name="status-download"),
    path("status/", views.lost_link, name="lost-link"),
    re_path(rf"^status/{TOKEN}/export\.json$", views.status_export, name="status-export"),
    re_path(rf"^status/{TOKEN}/key/$", views.status_key, name="status-key"),
    re_path(rf"^status/{TOKEN}/withdraw/$", views.status_withdraw, name="status-withdraw"),
    re_path(rf"^status/{TOKEN}/credit/$", views.status_credit, name="status-credit"),
    path(".well-known/security.txt", views.security_txt, name="security-txt"),
    path("security.txt", views.security_txt_redirect),
    path("pgp-key.txt", views.pgp_key, name="pgp-key"),
    path("pgp-key-transition.txt", views.pgp_key_transition, name="pgp-key-transition"),
    re_path(r"^\.well-known/openpgpkey/hu/(?P<wkd_hash>[a-z0-9]{32})$", views.wkd_key, name="wkd-key"),
    path(".well-known/openpgpkey/policy", views.wkd_policy),
    path("hall-of-fame/", views.hall_of_fame, name="hall-of-fame"),
    path("staff/attachments/<int:attachment_id>/", views.staff_download, name="staff-download"),
]
